"""The calling conventions of other platforms, one module per shape (see prewarm/src/shape.rs).

Each module's docstring is its contract. `request` holds what they share; `detect` picks a shape
when the deploy named none. The package's name is the adapter's own, so it cannot shadow a
function's modules, nor they it.
"""
