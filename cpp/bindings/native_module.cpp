// anunzi_fast._native: PCM conversion, the SPSC ring and the jitter buffer.
// Python sees zero-copy views of its buffers; the GIL is released around copies and loops long
// enough to be worth the hand-off (short ones finish faster than a GIL round trip).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "anunzi/cpu_dispatch.hpp"
#include "anunzi/jitter_buffer.hpp"
#include "anunzi/pcm.hpp"
#include "anunzi/spsc_ring.hpp"
#include "buffers.hpp"
#include "native_docs.hpp"

namespace py = pybind11;
using anunzi::SampleType;
using anunzi::bindings::BufferView;
using anunzi::bindings::dtype_of;
using anunzi::bindings::without_gil;
using anunzi::bindings::without_gil_if;

namespace {

// Below this many samples a loop takes less time than releasing and re-taking the GIL.
constexpr std::size_t kReleaseGilSamples = 16384;

std::string describe(py::handle obj) {
  std::ostringstream s;
  s << Py_TYPE(obj.ptr())->tp_name;
  if (py::hasattr(obj, "dtype")) s << " of dtype " << py::str(obj.attr("dtype")).cast<std::string>();
  return s.str();
}

[[noreturn]] void raise_not_writable_or_not_buffer(py::handle out) {
  BufferView probe;
  if (probe.acquire(out.ptr(), false, 0)) throw py::value_error("out is read-only");
  throw py::type_error("out must be a writable buffer (e.g. a numpy array), got " + describe(out));
}

// A 1-D walk over an input buffer: contiguous (stride 1) or a strided 1-D view.
struct InputWalk {
  const char* data = nullptr;
  std::size_t n = 0;
  std::ptrdiff_t stride = 1;  // in elements
  bool keep_shape = false;  // raw bytes give a 1-D result; arrays keep their shape
  int ndim = 1;
  const py::ssize_t* shape = nullptr;
};

// A new C-contiguous numpy array straight from numpy's C API: pybind11's array_t constructor
// builds shape and stride vectors on the heap, which costs more than converting 1000 samples.
template <typename T>
py::array new_array(const InputWalk& w) {
  auto& api = py::detail::npy_api::get();
  const py::ssize_t flat[1] = {static_cast<py::ssize_t>(w.n)};
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  // PyArray_NewFromDescr takes over the reference to descr, also when it fails.
  PyObject* array = api.PyArray_NewFromDescr_(
      api.PyArray_Type_, descr, w.keep_shape ? w.ndim : 1,
      w.keep_shape ? w.shape : flat,
      nullptr, nullptr, 0, nullptr);
  if (array == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(array);
}

InputWalk walk_input(const BufferView& in, std::size_t itemsize) {
  const Py_buffer& v = in.view();
  InputWalk w;
  w.data = in.data();
  if (in.raw_bytes()) {  // raw bytes are reinterpreted as samples
    if (!in.c_contiguous()) throw py::value_error("raw byte input must be contiguous");
    if (v.len % static_cast<py::ssize_t>(itemsize) != 0) {
      throw py::value_error("raw byte input length " + std::to_string(v.len) +
                            " is not a multiple of the sample size " + std::to_string(itemsize));
    }
    w.n = static_cast<std::size_t>(v.len) / itemsize;
    return w;
  }
  w.keep_shape = true;
  w.ndim = v.ndim;
  w.shape = v.shape;
  if (in.c_contiguous()) {
    w.n = in.num_items();
    return w;
  }
  if (v.ndim == 1 && v.strides[0] % v.itemsize == 0) {
    w.n = static_cast<std::size_t>(v.shape[0]);
    w.stride = v.strides[0] / v.itemsize;
    return w;
  }
  throw py::value_error(
      "samples must be C-contiguous or a 1-D strided view; use numpy.ascontiguousarray()");
}

// Acquires `out` (or allocates a new array) for n items of type T, checking everything.
template <typename T>
struct Output {
  py::object object;
  T* data = nullptr;
  BufferView view;  // keeps a caller's buffer acquired while we write
};

template <typename T>
void prepare_output(Output<T>& o, py::handle out, const BufferView& in, const InputWalk& w,
                    SampleType expected) {
  if (out.is_none()) {
    py::array array = new_array<T>(w);
    o.data = static_cast<T*>(array.mutable_data());
    o.object = std::move(array);
    return;
  }
  if (!o.view.acquire(out.ptr(), true, kReleaseGilSamples)) raise_not_writable_or_not_buffer(out);
  if (o.view.sample_type() != expected) {
    throw py::type_error(std::string("out must have dtype ") + anunzi::sample_type_name(expected) +
                         ", got " + describe(out));
  }
  if (!o.view.c_contiguous()) throw py::value_error("out must be C-contiguous");
  if (o.view.num_items() != w.n) {
    throw py::value_error("out has " + std::to_string(o.view.num_items()) +
                          " elements, the input has " + std::to_string(w.n));
  }
  if (anunzi::bindings::overlaps(o.view.view(), in.view())) {
    throw py::value_error("out must not share memory with the input");
  }
  o.data = reinterpret_cast<T*>(o.view.data());
  o.object = py::reinterpret_borrow<py::object>(out);
}

py::object float_to_pcm16(py::handle samples, py::handle out, bool return_clipped) {
  BufferView in;
  if (!in.acquire(samples.ptr(), false, kReleaseGilSamples)) {
    throw py::type_error("samples must be a buffer (numpy array, memoryview, bytes), got " +
                         describe(samples));
  }
  const std::optional<SampleType> type = in.raw_bytes() ? SampleType::kFloat32 : in.sample_type();
  if (type != SampleType::kFloat32 && type != SampleType::kFloat64) {
    throw py::type_error("float_to_pcm16 takes float32 or float64 samples, got " +
                         describe(samples));
  }
  const std::size_t itemsize = type == SampleType::kFloat32 ? 4 : 8;
  const InputWalk w = walk_input(in, itemsize);
  Output<int16_t> o;
  prepare_output(o, out, in, w, SampleType::kInt16);

  std::size_t clipped = 0;
  auto run = [&] {
    namespace pcm = anunzi::pcm;
    if (type == SampleType::kFloat32) {
      const auto* x = reinterpret_cast<const float*>(w.data);
      clipped = w.stride == 1 ? pcm::float_to_pcm16(x, o.data, w.n, return_clipped)
                              : pcm::float_to_pcm16_strided(x, w.stride, o.data, w.n, return_clipped);
    } else {
      const auto* x = reinterpret_cast<const double*>(w.data);
      clipped = w.stride == 1 ? pcm::double_to_pcm16(x, o.data, w.n, return_clipped)
                              : pcm::double_to_pcm16_strided(x, w.stride, o.data, w.n, return_clipped);
    }
  };
  without_gil_if(w.n >= kReleaseGilSamples, run);
  if (return_clipped) return py::make_tuple(o.object, clipped);
  return o.object;
}

py::object pcm16_to_float(py::handle samples, py::handle out) {
  BufferView in;
  if (!in.acquire(samples.ptr(), false, kReleaseGilSamples)) {
    throw py::type_error("samples must be a buffer (numpy array, memoryview, bytes), got " +
                         describe(samples));
  }
  if (!in.raw_bytes() && in.sample_type() != SampleType::kInt16) {
    throw py::type_error("pcm16_to_float takes int16 samples or raw PCM16 bytes, got " +
                         describe(samples));
  }
  const InputWalk w = walk_input(in, 2);
  Output<float> o;
  prepare_output(o, out, in, w, SampleType::kFloat32);
  auto run = [&] {
    const auto* x = reinterpret_cast<const int16_t*>(w.data);
    if (w.stride == 1) {
      anunzi::pcm::pcm16_to_float(x, o.data, w.n);
    } else {
      anunzi::pcm::pcm16_to_float_strided(x, w.stride, o.data, w.n);
    }
  };
  without_gil_if(w.n >= kReleaseGilSamples, run);
  return o.object;
}

// ---------------------------------------------------------------------------------------------
// Sample-type plumbing shared by the ring and the jitter buffer.

// The ring's and the jitter buffer's sample type: int16 or float32.
SampleType sample_type_from_dtype(py::handle dtype) {
  const std::optional<SampleType> type = anunzi::bindings::sample_type_of(dtype);
  if (type != SampleType::kInt16 && type != SampleType::kFloat32) {
    throw py::type_error("dtype must be int16 or float32, got " +
                         py::str(dtype).cast<std::string>());
  }
  return *type;
}

// A contiguous run of samples of exactly type t, from any buffer object.
struct SampleSpan {
  BufferView view;
  void* data = nullptr;
  std::size_t n = 0;
};

void acquire_samples(SampleSpan& s, py::handle obj, SampleType t, bool writable,
                     const char* what, std::size_t export_from = kReleaseGilSamples) {
  if (!s.view.acquire(obj.ptr(), writable, export_from)) {
    if (writable) raise_not_writable_or_not_buffer(obj);
    throw py::type_error(std::string(what) + " must be a buffer, got " + describe(obj));
  }
  if (s.view.sample_type() != t) {
    throw py::type_error(std::string(what) + " must have dtype " + anunzi::sample_type_name(t) +
                         ", got " + describe(obj));
  }
  if (!s.view.c_contiguous()) throw py::value_error(std::string(what) + " must be C-contiguous");
  s.data = s.view.data();
  s.n = s.view.num_items();
}

// Any integer-like Python object (int, numpy integer), without pybind11's RuntimeError for
// values beyond 64 bits: those are out of range like any other, a ValueError.
long long as_integer(py::handle value, const char* what) {
  PyObject* index = PyNumber_Index(value.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    throw py::type_error(std::string(what) + " must be an integer, got " + describe(value));
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0) throw py::value_error(std::string(what) + " is out of range");
  return v;
}

std::size_t checked_count(py::handle value, const char* what, std::size_t max) {
  const long long v = as_integer(value, what);
  if (v < 0 || static_cast<unsigned long long>(v) > max) {
    throw py::value_error(std::string(what) + " must be between 0 and " + std::to_string(max) +
                          ", got " + std::to_string(v));
  }
  return static_cast<std::size_t>(v);
}

std::chrono::nanoseconds checked_timeout(double seconds) {
  if (!(seconds >= 0.0) || seconds > 1e6) {  // also rejects NaN
    throw py::value_error("timeout must be between 0 and 1e6 seconds");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(seconds * 1e9));
}

// ---------------------------------------------------------------------------------------------
// One thread per side. The ring and the jitter buffer have one producer and one consumer (their
// C++ headers say so on every method). From Python, a second thread on one side is a caller's
// mistake that, with the GIL released in a copy or a wait, would run two index updates at once
// and corrupt the ring, and the next read would copy past its storage. So each side records
// the method running in it: entry claims the side with one compare-and-swap, exit frees it, and
// a call that finds it claimed raises RuntimeError instead. Uncontended, that is one atomic
// instruction per call; a claim never waits, so it cannot deadlock with the GIL.

struct Side {
  const char* owner;  // "SpscRing.", for messages
  const char* rule;   // "a ring has one producer"
  std::atomic<const char*> running{nullptr};  // the method inside this side, or null
};

class SideClaim {
 public:
  SideClaim(Side& side, const char* method) : side_(side) {
    const char* other = nullptr;
    if (!side.running.compare_exchange_strong(other, method, std::memory_order_acquire,
                                              std::memory_order_relaxed)) {
      throw std::runtime_error(std::string(side.owner) + other +
                               " is already running in another thread: " + side.rule);
    }
  }
  ~SideClaim() { side_.running.store(nullptr, std::memory_order_release); }
  SideClaim(const SideClaim&) = delete;
  SideClaim& operator=(const SideClaim&) = delete;

 private:
  Side& side_;
};

// ---------------------------------------------------------------------------------------------
// SpscRing for Python: one class, the sample type chosen at construction.

class PySpscRing {
 public:
  PySpscRing(py::handle capacity, py::handle dtype) : type_(sample_type_from_dtype(dtype)) {
    const long long c = as_integer(capacity, "capacity");
    constexpr auto kMax = anunzi::SpscRing<float>::kMaxCapacity;
    if (c < 1 || static_cast<unsigned long long>(c) > kMax) {
      throw py::value_error("capacity must be between 1 and 2**31 samples, got " +
                            std::to_string(c));
    }
    if (type_ == SampleType::kInt16) {
      int16_ = std::make_unique<anunzi::SpscRing<int16_t>>(static_cast<std::size_t>(c));
    } else {
      float_ = std::make_unique<anunzi::SpscRing<float>>(static_cast<std::size_t>(c));
    }
  }

  std::size_t write(py::handle samples) {
    const SideClaim claim(producer_, "write");
    SampleSpan s;
    acquire_samples(s, samples, type_, false, "samples");
    return without_gil_if(s.n >= kReleaseGilSamples, [&] {
      return int16_ ? int16_->write(static_cast<const int16_t*>(s.data), s.n)
                    : float_->write(static_cast<const float*>(s.data), s.n);
    });
  }

  std::size_t read_into(py::handle out) {
    const SideClaim claim(consumer_, "read_into");
    return read_claimed(out);
  }

  py::array read(py::handle max_samples) {
    const SideClaim claim(consumer_, "read");
    const std::size_t wanted = std::min(checked_count(max_samples, "max_samples",
                                                      anunzi::SpscRing<float>::kMaxCapacity),
                                        readable());
    py::array out(dtype_of(type_), std::vector<py::ssize_t>{static_cast<py::ssize_t>(wanted)});
    const std::size_t got = read_claimed(out);
    return got == wanted ? out : py::array(out[py::slice(0, static_cast<py::ssize_t>(got), 1)]);
  }

  // If the other side is still running Python when our wait ends, it holds the GIL, and
  // asking for the GIL now would put this thread to sleep in the kernel until the other one
  // lets go (a wake-up costs 10-50 us). When the other side also waits through the ring,
  // spinning a little longer, until it is in its own wait (so the GIL is free), makes the
  // hand-over nearly free. A side that never waits (a network thread) gets no linger.
  template <typename OtherSideBusy>
  static void linger_while(OtherSideBusy busy) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (busy() && std::chrono::steady_clock::now() < until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }

  bool wait_readable(py::handle num_samples, double timeout) {
    const SideClaim claim(consumer_, "wait_readable");
    const std::size_t n = checked_count(num_samples, "num_samples", capacity());
    const auto wait = checked_timeout(timeout);
    if (readable() >= n) return true;  // no wait, so no GIL hand-over to smooth
    return without_gil([&] {
      const bool ready =
          int16_ ? int16_->wait_for_readable(n, wait) : float_->wait_for_readable(n, wait);
      if (int16_ ? int16_->producer_has_waited() : float_->producer_has_waited()) {
        linger_while(
            [&] { return int16_ ? !int16_->producer_waiting() : !float_->producer_waiting(); });
      }
      return ready;
    });
  }

  bool wait_writable(py::handle num_samples, double timeout) {
    const SideClaim claim(producer_, "wait_writable");
    const std::size_t n = checked_count(num_samples, "num_samples", capacity());
    const auto wait = checked_timeout(timeout);
    if (writable() >= n) return true;
    return without_gil([&] {
      const bool ready =
          int16_ ? int16_->wait_for_writable(n, wait) : float_->wait_for_writable(n, wait);
      if (int16_ ? int16_->consumer_has_waited() : float_->consumer_has_waited()) {
        linger_while(
            [&] { return int16_ ? !int16_->consumer_waiting() : !float_->consumer_waiting(); });
      }
      return ready;
    });
  }

  std::size_t readable() const { return int16_ ? int16_->readable() : float_->readable(); }
  std::size_t writable() const { return int16_ ? int16_->writable() : float_->writable(); }
  std::size_t capacity() const { return int16_ ? int16_->capacity() : float_->capacity(); }
  py::dtype dtype() const { return dtype_of(type_); }

 private:
  // The consumer side, claimed by the caller.
  std::size_t read_claimed(py::handle out) {
    SampleSpan s;
    acquire_samples(s, out, type_, true, "out");
    return without_gil_if(s.n >= kReleaseGilSamples, [&] {
      return int16_ ? int16_->read(static_cast<int16_t*>(s.data), s.n)
                    : float_->read(static_cast<float*>(s.data), s.n);
    });
  }

  SampleType type_;
  std::unique_ptr<anunzi::SpscRing<int16_t>> int16_;
  std::unique_ptr<anunzi::SpscRing<float>> float_;
  Side producer_{"SpscRing.", "a ring has one producer"};
  Side consumer_{"SpscRing.", "a ring has one consumer"};
};

// ---------------------------------------------------------------------------------------------
// JitterBuffer for Python.

struct PyJitterStats {
  anunzi::JitterStats s;
  double sample_rate;
  double depth_ms() const { return static_cast<double>(s.buffered) * 1000.0 / sample_rate; }
  std::string repr() const {
    std::ostringstream o;
    o << "JitterStats(samples_in=" << s.samples_in << ", samples_out=" << s.samples_out
      << ", silence_samples=" << s.silence_samples << ", dropped=" << s.dropped
      << ", underruns=" << s.underruns << ", underrun_samples=" << s.underrun_samples
      << ", clears=" << s.clears << ", buffered=" << s.buffered << ", depth_ms=" << depth_ms()
      << ")";
    return o.str();
  }
};

std::size_t ms_to_samples(double ms, double rate, const char* what) {
  if (!std::isfinite(ms) || ms < 0) {
    throw py::value_error(std::string(what) + " must be a finite number >= 0");
  }
  const double samples = std::round(ms * rate / 1000.0);
  if (samples > static_cast<double>(anunzi::SpscRing<float>::kMaxCapacity)) {
    throw py::value_error(std::string(what) + " is too large (over 2**31 samples)");
  }
  return static_cast<std::size_t>(samples);
}

class PyJitterBuffer {
 public:
  PyJitterBuffer(py::handle sample_rate, double prefill_ms, double max_ms, py::handle dtype)
      : type_(sample_type_from_dtype(dtype)) {
    const long long rate = as_integer(sample_rate, "sample_rate");
    if (rate <= 0 || rate > 10'000'000) {
      throw py::value_error("sample_rate must be a positive number of Hz, got " +
                            std::to_string(rate));
    }
    rate_ = static_cast<double>(rate);
    const std::size_t prefill = ms_to_samples(prefill_ms, rate_, "prefill_ms");
    const std::size_t max_samples = ms_to_samples(max_ms, rate_, "max_ms");
    if (max_samples == 0) throw py::value_error("max_ms must hold at least one sample");
    if (prefill > max_samples) throw py::value_error("prefill_ms must not exceed max_ms");
    prefill_ms_ = prefill_ms;
    max_ms_ = max_ms;
    if (type_ == SampleType::kInt16) {
      int16_ = std::make_unique<anunzi::JitterBuffer<int16_t>>(prefill, max_samples);
    } else {
      float_ = std::make_unique<anunzi::JitterBuffer<float>>(prefill, max_samples);
    }
  }

  std::size_t push(py::handle samples) {
    const SideClaim claim(producer_, "push");
    SampleSpan s;
    acquire_samples(s, samples, type_, false, "samples", 0);  // exported: the GIL is released
    return without_gil([&] {  // push may wait (briefly) for the consumer's copy
      return int16_ ? int16_->push(static_cast<const int16_t*>(s.data), s.n)
                    : float_->push(static_cast<const float*>(s.data), s.n);
    });
  }

  std::size_t clear() {
    const SideClaim claim(producer_, "clear");
    return without_gil([&] { return int16_ ? int16_->clear() : float_->clear(); });
  }

  std::size_t read_into(py::handle out) {
    const SideClaim claim(consumer_, "read_into");
    return pull_claimed(out);
  }

  py::array read(py::handle num_samples) {
    const SideClaim claim(consumer_, "read");
    const std::size_t n =
        checked_count(num_samples, "num_samples", anunzi::SpscRing<float>::kMaxCapacity);
    py::array out(dtype_of(type_), std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
    pull_claimed(out);
    return out;
  }

  // Hands the consumer side to native code (a device callback in anunzi_fast._echo): a
  // capsule holding the float32 core buffer, named kJitterConsumerCapsule. The side stays
  // claimed, so Python's read_into/read raise RuntimeError, until the capsule is destroyed;
  // the capsule also keeps this buffer alive.
  py::object native_consumer(py::handle self) {
    if (!float_) throw py::type_error("only a float32 JitterBuffer can feed a native device");
    const char* other = nullptr;
    if (!consumer_.running.compare_exchange_strong(other, "native device callback",
                                                   std::memory_order_acquire,
                                                   std::memory_order_relaxed)) {
      throw std::runtime_error(std::string("JitterBuffer.") + other +
                               " is already running in another thread: " + consumer_.rule);
    }
    PyObject* capsule = PyCapsule_New(float_.get(), kJitterConsumerCapsule, [](PyObject* c) {
      auto* owner = static_cast<PyObject*>(PyCapsule_GetContext(c));
      auto* buffer = py::cast<PyJitterBuffer*>(py::handle(owner));
      buffer->consumer_.running.store(nullptr, std::memory_order_release);
      Py_DECREF(owner);
    });
    if (capsule == nullptr) {
      consumer_.running.store(nullptr, std::memory_order_release);
      throw py::error_already_set();
    }
    PyCapsule_SetContext(capsule, self.inc_ref().ptr());
    return py::reinterpret_steal<py::object>(capsule);
  }

  static constexpr const char* kJitterConsumerCapsule = "anunzi_fast._native.JitterConsumer";

  PyJitterStats stats() const { return {int16_ ? int16_->stats() : float_->stats(), rate_}; }
  int sample_rate() const { return static_cast<int>(rate_); }
  double prefill_ms() const { return prefill_ms_; }
  double max_ms() const { return max_ms_; }
  std::size_t prefill_samples() const {
    return int16_ ? int16_->prefill_samples() : float_->prefill_samples();
  }
  std::size_t max_samples() const {
    return int16_ ? int16_->max_samples() : float_->max_samples();
  }
  bool playing() const { return int16_ ? int16_->playing() : float_->playing(); }
  py::dtype dtype() const { return dtype_of(type_); }
  std::string repr() const {
    std::ostringstream o;
    o << "JitterBuffer(sample_rate=" << sample_rate() << ", prefill_ms=" << prefill_ms_
      << ", max_ms=" << max_ms_ << ", dtype='" << anunzi::sample_type_name(type_)
      << "', buffered=" << stats().s.buffered << ")";
    return o.str();
  }

 private:
  // The consumer side, claimed by the caller.
  std::size_t pull_claimed(py::handle out) {
    SampleSpan s;
    acquire_samples(s, out, type_, true, "out");
    return without_gil_if(s.n >= kReleaseGilSamples, [&] {
      return int16_ ? int16_->pull(static_cast<int16_t*>(s.data), s.n)
                    : float_->pull(static_cast<float*>(s.data), s.n);
    });
  }

  SampleType type_;
  double rate_ = 0;
  double prefill_ms_ = 0;
  double max_ms_ = 0;
  std::unique_ptr<anunzi::JitterBuffer<int16_t>> int16_;
  std::unique_ptr<anunzi::JitterBuffer<float>> float_;
  Side producer_{"JitterBuffer.", "a jitter buffer has one producer"};
  Side consumer_{"JitterBuffer.", "a jitter buffer has one consumer"};
};

// The ring's per-chunk calls, bound with CPython's own method protocol (METH_O): pybind11's
// general dispatcher costs about 80 ns a call, as much as the copy of a 10 ms chunk, and
// between two Python threads those calls are most of the hand-off.
template <std::size_t (PySpscRing::*Method)(py::handle)>
PyObject* ring_method_fast(PyObject* self, PyObject* arg) {
  try {
    return PyLong_FromSize_t((py::cast<PySpscRing&>(py::handle(self)).*Method)(arg));
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

PyMethodDef kRingFastMethods[] = {
    {"write", reinterpret_cast<PyCFunction>(&ring_method_fast<&PySpscRing::write>), METH_O,
     anunzi::docs::kRingWrite},
    {"read_into", reinterpret_cast<PyCFunction>(&ring_method_fast<&PySpscRing::read_into>),
     METH_O, anunzi::docs::kRingReadInto},
};

void add_fast_methods(py::handle cls, PyMethodDef* defs, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    py::object descr = py::reinterpret_steal<py::object>(
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &defs[i]));
    if (!descr) throw py::error_already_set();
    py::setattr(cls, defs[i].ml_name, descr);
  }
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "anunzi-fast native audio core: PCM conversion, SPSC ring, jitter buffer.";

  m.def("float_to_pcm16", &float_to_pcm16, py::arg("samples"), py::arg("out") = py::none(),
        py::kw_only(), py::arg("return_clipped") = false, anunzi::docs::kFloatToPcm16);
  m.def("pcm16_to_float", &pcm16_to_float, py::arg("samples"), py::arg("out") = py::none(),
        anunzi::docs::kPcm16ToFloat);

  anunzi::bindings::add_isa_functions(m);

  auto ring_class = py::class_<PySpscRing>(m, "SpscRing", anunzi::docs::kSpscRing);
  add_fast_methods(ring_class, kRingFastMethods, std::size(kRingFastMethods));
  ring_class
      .def(py::init<py::handle, py::handle>(), py::arg("capacity"),
           py::arg("dtype") = "int16")
      .def("read", &PySpscRing::read, py::arg("max_samples"), anunzi::docs::kRingRead)
      .def("wait_readable", &PySpscRing::wait_readable, py::arg("num_samples"),
           py::arg("timeout"), anunzi::docs::kRingWaitReadable)
      .def("wait_writable", &PySpscRing::wait_writable, py::arg("num_samples"),
           py::arg("timeout"), anunzi::docs::kRingWaitWritable)
      .def_property_readonly("readable", &PySpscRing::readable,
                             "Samples ready to read (exact on the consumer side).")
      .def_property_readonly("writable", &PySpscRing::writable,
                             "Free space in samples (exact on the producer side).")
      .def_property_readonly("capacity", &PySpscRing::capacity, "Capacity in samples.")
      .def_property_readonly("dtype", &PySpscRing::dtype, "Sample dtype (int16 or float32).");

  py::class_<PyJitterStats>(m, "JitterStats", "A snapshot of a JitterBuffer's counters.")
      .def_property_readonly("samples_in", [](const PyJitterStats& s) { return s.s.samples_in; })
      .def_property_readonly("samples_out", [](const PyJitterStats& s) { return s.s.samples_out; })
      .def_property_readonly("silence_samples",
                             [](const PyJitterStats& s) { return s.s.silence_samples; })
      .def_property_readonly("dropped", [](const PyJitterStats& s) { return s.s.dropped; })
      .def_property_readonly("underruns", [](const PyJitterStats& s) { return s.s.underruns; })
      .def_property_readonly("underrun_samples",
                             [](const PyJitterStats& s) { return s.s.underrun_samples; })
      .def_property_readonly("clears", [](const PyJitterStats& s) { return s.s.clears; })
      .def_property_readonly("buffered", [](const PyJitterStats& s) { return s.s.buffered; })
      .def_property_readonly("depth_ms", &PyJitterStats::depth_ms)
      .def("__repr__", &PyJitterStats::repr);

  py::class_<PyJitterBuffer>(m, "JitterBuffer", anunzi::docs::kJitterBuffer)
      .def(py::init<py::handle, double, double, py::handle>(), py::arg("sample_rate"),
           py::kw_only(), py::arg("prefill_ms") = 60.0, py::arg("max_ms") = 3000.0,
           py::arg("dtype") = "int16")
      .def("push", &PyJitterBuffer::push, py::arg("samples"), anunzi::docs::kJitterPush)
      .def("clear", &PyJitterBuffer::clear, anunzi::docs::kJitterClear)
      .def("read_into", &PyJitterBuffer::read_into, py::arg("out"), anunzi::docs::kJitterReadInto)
      .def("read", &PyJitterBuffer::read, py::arg("num_samples"), anunzi::docs::kJitterRead)
      .def("_native_consumer",
           [](py::object self) { return self.cast<PyJitterBuffer&>().native_consumer(self); },
           "Claim the consumer side for a native device callback (anunzi_fast._echo).")
      .def_property_readonly("stats", &PyJitterBuffer::stats, "A snapshot of the counters.")
      .def_property_readonly("sample_rate", &PyJitterBuffer::sample_rate)
      .def_property_readonly("prefill_ms", &PyJitterBuffer::prefill_ms)
      .def_property_readonly("max_ms", &PyJitterBuffer::max_ms)
      .def_property_readonly("prefill_samples", &PyJitterBuffer::prefill_samples)
      .def_property_readonly("max_samples", &PyJitterBuffer::max_samples)
      .def_property_readonly("playing", &PyJitterBuffer::playing,
                             "Whether playback is running (False while prefilling).")
      .def_property_readonly("dtype", &PyJitterBuffer::dtype)
      .def("__repr__", &PyJitterBuffer::repr);
}
