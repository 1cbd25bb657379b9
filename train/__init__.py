"""The paper's three-stage training schedule (``python -m train --config configs/train/X.yaml``)."""
