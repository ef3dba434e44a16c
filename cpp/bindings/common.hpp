#pragma once
// The vocabulary both extension modules (_native and _resampler) share: the core's sample
// types as numpy dtypes, and running C++ with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "anunzi/sample_type.hpp"

namespace anunzi::bindings {

namespace py = pybind11;

inline py::dtype dtype_of(SampleType type) {
  switch (type) {
    case SampleType::kFloat32:
      return py::dtype::of<float>();
    case SampleType::kFloat64:
      return py::dtype::of<double>();
    case SampleType::kInt16:
      return py::dtype::of<std::int16_t>();
    case SampleType::kInt32:
      return py::dtype::of<std::int32_t>();
  }
  throw std::logic_error("unknown sample type");
}

// The sample type `dtype` describes, if any. By equality, not identity: a dtype carrying
// metadata is a distinct object that still describes native float32 etc. Equality also rejects
// byte-swapped dtypes, whose data the kernels would misread.
inline std::optional<SampleType> sample_type_of(const py::dtype& dtype) {
  for (SampleType type : kAllSampleTypes) {
    if (dtype.equal(dtype_of(type))) return type;
  }
  return std::nullopt;
}

// The same for any dtype-like argument (a name, a numpy type, a dtype); numpy raises TypeError
// for what is no dtype at all.
inline std::optional<SampleType> sample_type_of(py::handle dtype_like) {
  return sample_type_of(py::dtype::from_args(py::reinterpret_borrow<py::object>(dtype_like)));
}

// The sample type numpy calls `name` ("float32", ...), if any.
inline std::optional<SampleType> sample_type_named(const std::string& name) {
  for (SampleType type : kAllSampleTypes) {
    if (name == sample_type_name(type)) return type;
  }
  return std::nullopt;
}

// Runs f() and returns its result, with the GIL released when `release` is true: for work
// long enough to be worth handing the GIL over (about a microsecond) or that may wait. Only
// pure C++ may run inside: no Python object may be touched.
template <typename F>
decltype(auto) without_gil_if(bool release, F&& f) {
  if (!release) return f();
  py::gil_scoped_release released;
  return f();
}

template <typename F>
decltype(auto) without_gil(F&& f) {
  return without_gil_if(true, std::forward<F>(f));
}

}  // namespace anunzi::bindings
