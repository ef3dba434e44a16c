// pybind11 binding of the streaming resampler (anunzi_fast._resampler).
//
// Python (anunzi_fast/resampler.py) normalises and validates arguments and owns the error
// messages; this layer checks again, reads arrays in place through their strides (C or Fortran
// order, any dtype of the four), and releases the GIL only around the compute loop and the
// filter design (pure C++, up to seconds for extreme ratios).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "anunzi/resampler.hpp"
#include "common.hpp"

namespace py = pybind11;
using anunzi::SampleType;
using anunzi::bindings::without_gil;

namespace {

constexpr const char* kDtypeError =
    "Data type must be one of [float32, float64, int16, int32], not ";

SampleType io_type_of(const py::dtype& dtype) {
  const std::optional<SampleType> type = anunzi::bindings::sample_type_of(dtype);
  if (!type) throw py::type_error(kDtypeError + py::str(dtype).cast<std::string>());
  return *type;
}

SampleType io_type_named(const std::string& name) {
  const std::optional<SampleType> type = anunzi::bindings::sample_type_named(name);
  if (!type) throw py::type_error(kDtypeError + name);
  return *type;
}

anunzi::Quality quality_of(int q) {
  if (!anunzi::quality_is_valid(q))
    throw py::value_error("Quality must be one of [QQ, LQ, MQ, HQ, VHQ]");
  return static_cast<anunzi::Quality>(q);
}

// Builds the core with the GIL released: designing a filter is pure C++ and takes up to a
// second or more for extreme ratios, during which other Python threads must keep running.
// Arguments are validated (and the package's active ISA read) before, with the GIL held.
anunzi::Resampler make_core(double in_rate, double out_rate, std::size_t num_channels,
                            anunzi::Quality quality, SampleType type) {
  const anunzi::Isa isa = anunzi::bindings::shared_active_isa();
  return without_gil(
      [&] { return anunzi::Resampler(in_rate, out_rate, num_channels, quality, type, isa); });
}

// numpy.ndarray, fetched once at import: chunks must be exactly of this type.
PyTypeObject*& ndarray_type() {
  static PyTypeObject* type = nullptr;
  return type;
}

// A view of a 1-D or 2-D [frames, channels] array read in place through its strides.
anunzi::StridedConstView input_view(const py::array& x, SampleType type) {
  const auto ndim = x.ndim();
  const auto item = x.itemsize();
  const py::ssize_t frame_stride = x.strides(0);
  const py::ssize_t channel_stride = ndim == 2 ? x.strides(1) : item;
  if (frame_stride % item != 0 || channel_stride % item != 0)
    throw py::value_error("Input strides must be multiples of the item size");
  return {x.data(), type, static_cast<std::size_t>(x.shape(0)), frame_stride / item,
          channel_stride / item};
}

// A new C-order array of n_out frames with x's ndim and channels, of `dtype` (`type`'s), and a
// view of it.
std::pair<py::array, anunzi::StridedView> output_like(const py::array& x, const py::dtype& dtype,
                                                      SampleType type, std::size_t channels,
                                                      std::size_t n_out) {
  std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(n_out)};
  if (x.ndim() == 2) shape.push_back(static_cast<py::ssize_t>(channels));
  py::array y(dtype, shape);
  const anunzi::StridedView out{y.mutable_data(), type, n_out,
                                static_cast<std::ptrdiff_t>(channels), 1};
  return {y, out};
}

// A stream bound to one sample type. A mutex turns concurrent use of one object from two
// threads (a caller bug, now possible since the GIL is released) into an error, not a race;
// every method that reads or writes the stream's state takes it.
class PyResampler {
 public:
  // `chunk_error` is the message for a chunk that is not an ndarray of the stream's dtype (the
  // Python layer's, which hands chunks straight to process()).
  PyResampler(double in_rate, double out_rate, std::size_t num_channels, int quality,
              const std::string& dtype, std::string chunk_error)
      : type_(io_type_named(dtype)),
        dtype_(anunzi::bindings::dtype_of(type_)),
        chunk_error_(std::move(chunk_error)),
        core_(make_core(in_rate, out_rate, num_channels, quality_of(quality), type_)) {}

  // Accepts exactly a numpy array (no subclass, no conversion), 1-D (mono) or 2-D [frames,
  // channels], of the stream's dtype; the result has the input's ndim. The checks run in the
  // order resampler.py documents them: type and dtype (TypeError), then shape (ValueError).
  py::array process(const py::handle& chunk, bool last) {
    if (Py_TYPE(chunk.ptr()) != ndarray_type()) throw py::type_error(chunk_error_);
    const auto x = py::reinterpret_borrow<py::array>(chunk);
    // The stream's own dtype object is what arrays of its type carry: compare by identity
    // first (a 10 ms chunk takes about a microsecond, this path a tenth of that).
    const py::dtype dtype = x.dtype();
    if (!dtype.is(dtype_) && anunzi::bindings::sample_type_of(dtype) != type_)
      throw py::type_error(chunk_error_);
    const auto ndim = x.ndim();
    if (ndim != 1 && ndim != 2) throw py::value_error("Input must be 1-D or 2-D array");
    const std::size_t channels = ndim == 2 ? static_cast<std::size_t>(x.shape(1)) : 1;
    if (channels != core_.num_channels()) throw py::value_error("Channel num mismatch");
    const anunzi::StridedConstView in = input_view(x, type_);
    const auto lock = busy_guard();
    const std::size_t n_out = core_.output_frames_for(in.frames, last);
    auto [y, out] = output_like(x, dtype_, type_, channels, n_out);
    // Handing the GIL over costs more than a short chunk's work when other threads wait for it
    // (each hand-over wakes one): short chunks keep it.
    const double work = static_cast<double>(n_out) * static_cast<double>(channels) *
                        static_cast<double>(core_.taps_per_output());
    anunzi::bindings::without_gil_if(work > kGilWork, [&] { core_.process(in, last, out); });
    return y;
  }

  void clear() {
    const auto lock = busy_guard();
    core_.clear();
  }

  // Stream state is written by process() with the GIL released, so reading it needs the guard.
  double delay() const {
    const auto lock = busy_guard();
    return core_.delay();
  }
  std::uint64_t num_clips() const {
    const auto lock = busy_guard();
    return core_.num_clips();
  }

  // For the immutable configuration (taps, phases, ratio...), readable without the guard.
  const anunzi::Resampler& core() const { return core_; }

 private:
  // Never blocks: blocking here while holding the GIL would deadlock with a process() call
  // that holds the mutex and waits for the GIL to return its result.
  std::unique_lock<std::mutex> busy_guard() const {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock())
      throw std::runtime_error("ResampleStream used from two threads at once");
    return lock;
  }

  // Multiply-adds below which a chunk keeps the GIL: about 5 us of work.
  static constexpr double kGilWork = 3e5;

  SampleType type_;
  py::dtype dtype_;
  std::string chunk_error_;
  anunzi::Resampler core_;
  mutable std::mutex mutex_;
};

// The whole of x as one signal; long inputs are split across up to `threads` threads, with
// bit-identical results (Resampler::oneshot).
py::array oneshot(const py::array& x, double in_rate, double out_rate, int quality,
                  unsigned threads) {
  if (x.ndim() != 1 && x.ndim() != 2) throw py::value_error("Input must be 1-D or 2-D array");
  const SampleType type = io_type_of(x.dtype());
  const auto channels = x.ndim() == 2 ? static_cast<std::size_t>(x.shape(1)) : 1;
  const anunzi::StridedConstView in = input_view(x, type);
  anunzi::Resampler core = make_core(in_rate, out_rate, channels, quality_of(quality), type);
  const std::size_t n_out = core.oneshot_frames(in.frames);
  auto [y, out] = output_like(x, anunzi::bindings::dtype_of(type), type, channels, n_out);
  without_gil([&] { core.oneshot(in, out, threads); });
  return y;
}

}  // namespace

PYBIND11_MODULE(_resampler, m) {
  anunzi::bindings::load_shared_isa();  // the level set_active_isa() sets, from _native
  ndarray_type() = reinterpret_cast<PyTypeObject*>(
      py::object(py::module_::import("numpy").attr("ndarray")).release().ptr());  // kept
  m.doc() =
      "anunzi-fast streaming resampler: cascades of polyphase FIR stages (half-band, equiripple,\n"
      "Kaiser), SIMD dispatched";
  m.attr("QQ") = static_cast<int>(anunzi::Quality::kQuick);
  m.attr("LQ") = static_cast<int>(anunzi::Quality::kLow);
  m.attr("MQ") = static_cast<int>(anunzi::Quality::kMedium);
  m.attr("HQ") = static_cast<int>(anunzi::Quality::kHigh);
  m.attr("VHQ") = static_cast<int>(anunzi::Quality::kVeryHigh);

  py::class_<PyResampler>(m, "Resampler")
      .def(py::init<double, double, std::size_t, int, const std::string&, std::string>(),
           py::arg("in_rate"), py::arg("out_rate"), py::arg("num_channels"), py::arg("quality"),
           py::arg("dtype"),
           py::arg("chunk_error") = "Input dtype does not match the stream's dtype")
      .def("process", &PyResampler::process, py::arg("x"), py::arg("last"),
           "Resample a 1-D or 2-D [frames, channels] chunk of the stream's dtype; returns a new\n"
           "array of the same ndim. TypeError with chunk_error for anything but a numpy array\n"
           "of that dtype.")
      .def("clear", &PyResampler::clear)
      .def("delay", &PyResampler::delay)
      .def("num_clips", &PyResampler::num_clips)
      .def_property_readonly("latency_frames",
                             [](const PyResampler& r) { return r.core().latency_frames(); })
      .def_property_readonly("taps", [](const PyResampler& r) { return r.core().taps_per_output(); })
      .def_property_readonly("phases", [](const PyResampler& r) { return r.core().num_phases(); })
      .def_property_readonly("interpolated",
                             [](const PyResampler& r) { return r.core().interpolated_phases(); })
      .def_property_readonly("design",
                             [](const PyResampler& r) { return r.core().design_method(); })
      .def_property_readonly(
          "stages",
          [](const PyResampler& r) {
            py::list stages;
            for (const anunzi::ResamplerStage& s : r.core().stages()) {
              py::dict d;
              d["up"] = s.up;
              d["down"] = s.down;
              d["taps"] = s.taps;
              d["phases"] = s.phases;
              d["multiply_adds"] = s.multiply_adds;
              d["latency_frames"] = s.latency_frames;
              d["interpolated"] = s.interpolated;
              d["design"] = s.design;
              d["kernel"] = s.kernel;
              stages.append(d);
            }
            return stages;
          },
          "The cascade's stages, first to last: ratio (up, down), taps and phases of the table,\n"
          "multiply-adds per output, latency in the stage's output samples, design and kernel.")
      .def_property_readonly("double_precision",
                             [](const PyResampler& r) { return r.core().double_precision(); })
      .def_property_readonly(
          "isa", [](const PyResampler& r) { return std::string(anunzi::isa_name(r.core().isa())); })
      .def("oneshot_parts",
           [](const PyResampler& r, std::size_t in_frames, unsigned threads) {
             return r.core().oneshot_parts(in_frames, threads);
           },
           py::arg("in_frames"), py::arg("threads"))
      .def_property_readonly("ratio", [](const PyResampler& r) {
        return py::make_tuple(r.core().out_step(), r.core().in_step());
      });

  m.def("oneshot", &oneshot, py::arg("x"), py::arg("in_rate"), py::arg("out_rate"),
        py::arg("quality"), py::arg("threads") = 1,
        "Resample a whole 1-D or 2-D [frames, channels] array on up to `threads` threads "
        "(bit-identical for any count); returns a new array.");
  m.def(
      "fma_peak",
      [](int rounds) {
        const anunzi::Isa isa = anunzi::bindings::shared_active_isa();
        return without_gil([&] { return anunzi::fma_peak(isa, rounds); });
      },
      py::arg("rounds") = 200,
      "For the benchmarks: float32 multiply-adds per second of the active ISA's FMA units on\n"
      "registers alone (12 independent chains), the best of `rounds` runs of about 1 ms: the\n"
      "peak the resampler's kernels are measured against.");
  m.def(
      "design_cache_stats",
      [] {
        const anunzi::DesignCacheStats stats = anunzi::design_cache_stats();
        py::dict d;
        d["bytes"] = stats.bytes;
        d["entries"] = stats.entries;
        d["limit_bytes"] = stats.limit_bytes;
        d["designs_computed"] = stats.designs_computed;
        return d;
      },
      "The process-wide filter-design cache: coefficient bytes held, entries, the byte cap, and\n"
      "designs computed so far (cache misses). For tests and diagnostics.");
}
