"""``vcompute bench``: inference (engine, PyTorch float, onnxruntime) and proof-stage timings (``run``),
the PyTorch float baseline (``torch_float``) and the chart (``plot``)."""
