"""vcompute: verifiable GPU inference.

The data flows one way: ``cli`` -> ``pipeline`` stages -> EZKL / engine / chain.
"""

__version__ = "0.1.0"
