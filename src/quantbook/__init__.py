"""quantbook: the math behind Quantbook, a tested textbook on quantization.

One module per idea: ``affine``, ``symmetric``, ``granularity``, ``packing``, ``formats``,
``microscaling``, ``kquants``, ``floats``, ``embeddings``, ``metrics``, ``matmul``,
``retrieval``, ``data``, ``explorers``.
"""

__version__ = "0.3.0"
