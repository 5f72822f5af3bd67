"""Fashion-MNIST data of `vipriors-hub demo`, written by scripts/build_demo_data.py (MIT, see COPYRIGHT)."""
