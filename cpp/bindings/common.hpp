#pragma once
// The vocabulary both extension modules (_native and _resampler) share: the core's sample
// types as numpy dtypes, running C++ with the GIL released, and the one instruction-set level.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "anunzi/cpu_dispatch.hpp"
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

// ---- The instruction-set level. Each module links its own copy of cpu_dispatch.cpp, so the
// package's one level is _native's: it defines the Python functions and hands _resampler its
// active_isa() through a capsule (CPython's way for one extension to call another), so that
// set_active_isa() reaches new resampler streams as well as the conversions.

struct IsaApi {
  Isa (*active_isa)();
};
inline constexpr const char* kIsaCapsule = "anunzi_fast._native._isa_api";

inline constexpr Isa kAllIsas[] = {Isa::kPortable, Isa::kSse2, Isa::kAvx2, Isa::kAvx512};

// In _native's module init: active_isa(), supported_isas(), set_active_isa() and the capsule;
// and a RuntimeWarning naming an ANUNZI_FAST_ISA value that was unknown or unsupported (the
// best level is used instead: a bad value never stops an import).
inline void add_isa_functions(py::module_& m) {
  static const IsaApi api{&anunzi::active_isa};
  m.add_object("_isa_api", py::capsule(&api, kIsaCapsule));
  m.def(
      "active_isa", [] { return std::string(isa_name(anunzi::active_isa())); },
      "Name of the instruction-set level in use: by the conversions, and by resampler streams\n"
      "built from now on (each stream keeps the level it was built with).");
  m.def(
      "supported_isas",
      [] {
        py::list names;
        for (Isa isa : kAllIsas) {
          if (isa_supported(isa)) names.append(isa_name(isa));
        }
        return names;
      },
      "Levels this CPU can run, lowest first (ANUNZI_FAST_ISA and set_active_isa take these).");
  m.def(
      "set_active_isa",
      [](const std::string& name) {
        const std::optional<Isa> isa = isa_from_name(name);
        if (!isa) {
          throw py::value_error("unknown ISA level '" + name +
                                "'; expected one of portable, sse2, avx2, avx512");
        }
        if (!anunzi::set_active_isa(*isa)) {
          throw py::value_error("this CPU cannot run the '" + name + "' level");
        }
      },
      py::arg("name"),
      "Force an instruction-set level for the conversions and for resampler streams built\n"
      "afterwards (for tests and benchmarks). ValueError for an unknown name or a level this\n"
      "CPU cannot run.");
  const std::string ignored = ignored_isa_request();
  if (!ignored.empty()) {
    const std::string message = "ANUNZI_FAST_ISA='" + ignored +
                                "' is unknown or not supported by this CPU; using '" +
                                isa_name(anunzi::active_isa()) + "'";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) {
      throw py::error_already_set();  // warnings are errors here
    }
  }
}

// In _resampler: the level _native has active now. Call load_shared_isa() in the module init
// first (it imports _native).
inline const IsaApi*& shared_isa_api() {
  static const IsaApi* api = nullptr;
  return api;
}

inline void load_shared_isa() {
  shared_isa_api() = static_cast<const IsaApi*>(PyCapsule_Import(kIsaCapsule, 0));
  if (shared_isa_api() == nullptr) throw py::error_already_set();
}

inline Isa shared_active_isa() { return shared_isa_api()->active_isa(); }

}  // namespace anunzi::bindings
