from setuptools import find_packages, setup

# torch is pinned to the 2.13 line: a looser range lets pip pull a multi-GB CUDA build.
setup(
    name="nirvision",
    version="0.1.0",
    description="Near-infrared video to natural-colour RGB with MPFNet, live and in batch",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # calibrate/ too: the int8 models the engine asks for are made with `python -m calibrate` from anywhere
    packages=find_packages(include=["nirvision", "nirvision.*", "calibrate"]) + ["nirvision.configs"],
    package_dir={"nirvision.configs": "configs"},
    # the bundled checkpoint, its model card and the curves the card shows (tests/test_api_integration.py checks the list)
    package_data={"nirvision.configs": ["*/*.yaml"], "nirvision": ["weights/*.pt", "weights/*.md", "weights/*.png"]},
    install_requires=[
        "torch==2.13.0",
        "numpy>=1.24",
        "opencv-python>=4.8",
        "av>=12",
        "pyyaml>=6",
    ],
    extras_require={
        "test": ["pytest>=8", "onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1", "openvino>=2024.0"],
        "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"],
        # OpenVINO's CPU plugin on the same ONNX export: bf16 on AMX / AVX-512 BF16, int8 on VNNI / AMX
        "openvino": ["onnx>=1.16", "onnxscript>=0.1", "openvino>=2024.0"],
        "trt": ["torch-tensorrt>=2.13,<2.14"],
    },
    entry_points={"console_scripts": ["nirvision=nirvision.cli:main"]},
)
