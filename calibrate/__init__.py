"""Precision calibration and validation for deployed backends (``python -m calibrate``).

INT8 post-training static quantization of the ONNX model with ONNX Runtime on real NIR frames,
and a report of every reduced precision's error against fp32 (and against ground truth when a
paired folder is given). Imports nirvision; nirvision never imports this package.
"""
