#pragma once
// Zero-copy access to Python buffer-protocol objects (numpy arrays, memoryview, bytes,
// bytearray), with the checks every binding needs: the element type, contiguity, and
// writability. Errors are raised as the Python exceptions the package documents:
// wrong element type -> TypeError; wrong size, layout, read-only or overlap -> ValueError.
#include <Python.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common.hpp"

namespace anunzi::bindings {

// What a buffer's elements are: one of the core's sample types (in native byte order), raw
// bytes to reinterpret as wire data (bytes, bytearray and their memoryviews), or neither.
struct Elements {
  std::optional<SampleType> samples;
  bool raw_bytes = false;
};

// Native-order formats only: a byte-order prefix that means "little-endian" is accepted on
// little-endian machines; big-endian data is an unsupported type. Unsigned bytes ('B', 'c':
// bytes, bytearray, their memoryviews) are raw data to reinterpret; numpy arrays of int8 or
// uint8 are not (the caller checks), as that would be a silent conversion.
inline Elements classify_format(const char* format, Py_ssize_t itemsize) {
  if (format == nullptr) return {std::nullopt, itemsize == 1};
  std::string f(format);
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (f[0] == '<') return {};
#endif
    f.erase(0, 1);
  }
  if (f == "h" && itemsize == 2) return {SampleType::kInt16};
  if ((f == "i" || f == "l") && itemsize == 4) return {SampleType::kInt32};
  if (f == "f" && itemsize == 4) return {SampleType::kFloat32};
  if (f == "d" && itemsize == 8) return {SampleType::kFloat64};
  if ((f == "B" || f == "c") && itemsize == 1) return {std::nullopt, true};
  return {};
}

// A view of a buffer-protocol object. Small numpy arrays are read straight from the array
// struct (a full PyObject_GetBuffer costs about 100 ns, as much as converting 1000 samples);
// that shortcut is taken only when the GIL stays held for the whole call, since only an
// exported buffer stops another thread from resizing the array under us. Everything else goes
// through PyObject_GetBuffer and is released on scope exit.
class BufferView {
 public:
  BufferView() = default;
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  ~BufferView() {
    if (exported_) PyBuffer_Release(&view_);
  }

  // Returns false (with no Python error set) when obj is not a buffer or, with writable, not
  // a writable one. Arrays of at least `export_from` items are always exported.
  bool acquire(PyObject* obj, bool writable, std::size_t export_from) {
    if (try_numpy_fast_path(obj, writable, export_from)) return true;
    const int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &view_, flags) != 0) {
      PyErr_Clear();
      return false;
    }
    exported_ = true;
    elements_ = classify_format(view_.format, view_.itemsize);
    if (elements_.raw_bytes && py::isinstance<py::array>(obj)) elements_.raw_bytes = false;
    return true;
  }

  const Py_buffer& view() const { return view_; }
  // The elements' sample type, if they are one of the core's.
  std::optional<SampleType> sample_type() const { return elements_.samples; }
  // Whether the buffer is raw bytes (never a numpy array).
  bool raw_bytes() const { return elements_.raw_bytes; }
  bool c_contiguous() const { return c_contiguous_ || PyBuffer_IsContiguous(&view_, 'C') != 0; }
  std::size_t num_items() const {
    return static_cast<std::size_t>(view_.len / (view_.itemsize ? view_.itemsize : 1));
  }
  char* data() const { return static_cast<char*>(view_.buf); }

 private:
  bool try_numpy_fast_path(PyObject* obj, bool writable, std::size_t export_from) {
    if (!py::isinstance<py::array>(obj)) return false;
    auto* a = py::detail::array_proxy(obj);
    constexpr int kCContiguous = 0x0001;  // NPY_ARRAY_C_CONTIGUOUS
    constexpr int kWriteable = 0x0400;    // NPY_ARRAY_WRITEABLE
    if (writable && !(a->flags & kWriteable)) return false;  // let the export report it
    const auto dtype = py::reinterpret_borrow<py::dtype>(a->descr);
    py::ssize_t count = 1;
    for (int d = 0; d < a->nd; ++d) count *= a->dimensions[d];
    if (static_cast<std::size_t>(count) >= export_from) return false;
    const py::ssize_t itemsize = dtype.itemsize();
    elements_ = {};
    const char order = dtype.byteorder();
    if (order == '=' || order == '|') {  // native; numpy writes '=' for native multi-byte types
      switch (dtype.num()) {
        case 3:  // NPY_SHORT
          elements_.samples = SampleType::kInt16;
          break;
        case 5:  // NPY_INT
        case 7:  // NPY_LONG (4 bytes on some platforms)
          if (itemsize == 4) elements_.samples = SampleType::kInt32;
          break;
        case 11:  // NPY_FLOAT
          elements_.samples = SampleType::kFloat32;
          break;
        case 12:  // NPY_DOUBLE
          elements_.samples = SampleType::kFloat64;
          break;
        default:  // int8/uint8 arrays are not raw bytes
          break;
      }
    }
    view_.buf = a->data;
    view_.obj = nullptr;  // borrowed: not exported, nothing to release
    view_.len = count * itemsize;
    view_.itemsize = itemsize;
    view_.readonly = !(a->flags & kWriteable);
    view_.ndim = a->nd;
    view_.shape = a->dimensions;
    view_.strides = a->strides;
    c_contiguous_ = (a->flags & kCContiguous) != 0;
    return true;
  }

  Py_buffer view_{};
  Elements elements_;
  bool exported_ = false;
  bool c_contiguous_ = false;
};

// The memory span [lo, hi) that a view touches, for overlap checks.
inline std::pair<const char*, const char*> span_of(const Py_buffer& v) {
  const char* lo = static_cast<const char*>(v.buf);
  const char* hi = lo;
  if (v.len == 0) return {lo, hi};
  if (v.ndim <= 1 || v.strides == nullptr) {
    const py::ssize_t stride = (v.ndim == 1 && v.strides) ? v.strides[0] : v.itemsize;
    const py::ssize_t n = v.ndim == 1 && v.shape ? v.shape[0] : v.len / v.itemsize;
    const py::ssize_t last = (n - 1) * stride;
    if (last < 0) lo += last; else hi += last;
    return {lo, hi + v.itemsize};
  }
  for (int d = 0; d < v.ndim; ++d) {
    const py::ssize_t extent = (v.shape[d] - 1) * v.strides[d];
    if (extent < 0) lo += extent; else hi += extent;
  }
  return {lo, hi + v.itemsize};
}

inline bool overlaps(const Py_buffer& a, const Py_buffer& b) {
  const auto [a_lo, a_hi] = span_of(a);
  const auto [b_lo, b_hi] = span_of(b);
  return a.len > 0 && b.len > 0 && a_lo < b_hi && b_lo < a_hi;
}

}  // namespace anunzi::bindings
