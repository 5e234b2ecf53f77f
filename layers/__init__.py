"""NumPy layers and sequence-to-sequence models of *Deep Learning from Scratch 2*, ch. 7-8."""

__all__: list[str] = []
