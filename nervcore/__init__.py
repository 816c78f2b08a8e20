"""What every nervc layer needs and none owns: the user-facing error type, atomic file output
and video I/O. It sits below ``metanerv`` (model, meta-learning), ``bitstreams`` (format) and
``codec`` (encoder, decoder, CLI), so imports only ever run downwards:
``codec -> bitstreams -> metanerv -> nervcore``.
"""
