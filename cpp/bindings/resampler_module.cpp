// Placeholder until the streaming resampler lands (issue 3).
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_resampler, m) { m.doc() = "anunzi-fast streaming resampler (not yet built)"; }
