"""Benchmarks that ship with the package (``constrain bench ...``).

* :mod:`constrain.benchmarks.sampling`: MaskBench file splits and stratified samples.
* :mod:`constrain.benchmarks.engines`: constrain and the peer engines behind one
  ``transformers`` LogitsProcessor interface (peers are optional imports).
* :mod:`constrain.benchmarks.jsonschemabench`: the JSONSchemaBench end-to-end runner
  (``constrain bench jsonschemabench``).
* :mod:`constrain.benchmarks.report`: its tables and plots.
"""
