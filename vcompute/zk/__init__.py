"""The proof side: EZKL settings and calibration, circuit, SRS, keys, witness, proof, verification.

One module per EZKL concern (``circuit``, ``srs``, ``keys``, ``proving``), how EZKL is called
(``ezkl_call``), the proof dir's files and what may be trusted in them (``proofdir``), and the
two flows that use them: ``pipeline`` (prove) and ``verify``.
"""
