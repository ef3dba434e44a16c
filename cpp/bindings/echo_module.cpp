// anunzi_fast._echo: echo cancellation's native side for Python.
//
// - ReferenceAligner: the GCC-PHAT delay estimator and the reference delay line (GIL
//   released around every call: a call that completes a hop runs two 8192-point FFTs).
// - TimedTap, PlayoutMonitor: what device callbacks hand over, one producer and one consumer
//   each (the side in use is claimed, so a second thread on one side is a RuntimeError).
// - OutputEngine, InputEngine: PortAudio callbacks in C++ (their addresses and user data as
//   integers, for sounddevice's cffi or for ctypes), so that no Python runs on the audio
//   thread.
//
// A module of its own rather than more of _native: it links the estimator and the callbacks,
// which only live calls need, and it can be rebuilt alone. It reaches the jitter buffer it
// plays through a capsule from _native (JitterBuffer._native_consumer), as _resampler reaches
// the ISA level.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "anunzi/audio_tap.hpp"
#include "anunzi/delay_estimator.hpp"
#include "anunzi/device_callbacks.hpp"
#include "buffers.hpp"

namespace py = pybind11;
using anunzi::SampleType;
using anunzi::bindings::BufferView;
using anunzi::bindings::without_gil;

namespace {

constexpr const char* kJitterConsumerCapsule = "anunzi_fast._native.JitterConsumer";

// One side of a single-producer or single-consumer object, claimed while in use.
class Claim {
 public:
  Claim(std::atomic<const char*>& side, const char* who, const char* what) : side_(side) {
    const char* other = nullptr;
    if (!side.compare_exchange_strong(other, who, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      throw std::runtime_error(std::string(what) + ": " + other +
                               " is already using this side in another thread");
    }
  }
  ~Claim() { side_.store(nullptr, std::memory_order_release); }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;

 private:
  std::atomic<const char*>& side_;
};

// A contiguous 1-D float32 buffer, read-only or writable.
struct FloatSpan {
  BufferView view;
  float* data = nullptr;
  std::size_t n = 0;
};

void acquire_floats(FloatSpan& s, py::handle obj, const char* what, bool writable = false) {
  if (!s.view.acquire(obj.ptr(), writable, 0)) {
    if (writable) throw py::type_error(std::string(what) + " must be a writable float32 buffer");
    throw py::type_error(std::string(what) + " must be a float32 buffer (numpy array), got " +
                         std::string(Py_TYPE(obj.ptr())->tp_name));
  }
  if (s.view.sample_type() != SampleType::kFloat32) {
    throw py::type_error(std::string(what) + " must have dtype float32");
  }
  if (!s.view.c_contiguous()) throw py::value_error(std::string(what) + " must be C-contiguous");
  if (s.view.view().ndim > 1) throw py::value_error(std::string(what) + " must be 1-D");
  s.data = reinterpret_cast<float*>(s.view.data());
  s.n = s.view.num_items();
}

anunzi::DelayEstimatorConfig make_config(int sample_rate, double max_delay_ms,
                                         double initial_delay_ms) {
  anunzi::DelayEstimatorConfig c;
  c.sample_rate = sample_rate;
  c.max_delay_ms = max_delay_ms;
  c.initial_delay_ms = initial_delay_ms;
  try {
    anunzi::validate(c);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return c;
}

class PyReferenceAligner {
 public:
  PyReferenceAligner(int sample_rate, double max_delay_ms, double initial_delay_ms,
                     double margin_ms, double engage_ms) {
    const auto config = make_config(sample_rate, max_delay_ms, initial_delay_ms);
    try {
      core_ = std::make_unique<anunzi::ReferenceAligner>(config, margin_ms, engage_ms);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }

  py::array process(py::handle reference, py::handle capture, py::handle out) {
    const Claim claim(busy_, "process", "ReferenceAligner.process");
    FloatSpan r, c;
    acquire_floats(r, reference, "reference");
    acquire_floats(c, capture, "capture");
    if (r.n != c.n) {
      throw py::value_error("reference and capture must have the same length, got " +
                            std::to_string(r.n) + " and " + std::to_string(c.n));
    }
    py::array result;
    FloatSpan o;
    if (out.is_none()) {
      result = py::array_t<float>(static_cast<py::ssize_t>(r.n));
      o.data = static_cast<float*>(result.mutable_data());
    } else {
      acquire_floats(o, out, "out", true);
      if (o.n != r.n) throw py::value_error("out must have the inputs' length");
      if (anunzi::bindings::overlaps(o.view.view(), r.view.view()) ||
          anunzi::bindings::overlaps(o.view.view(), c.view.view())) {
        throw py::value_error("out must not share memory with the inputs");
      }
      result = py::reinterpret_borrow<py::array>(out);
    }
    without_gil([&] { core_->process(r.data, c.data, o.data, r.n); });
    return result;
  }

  void reset() {
    const Claim claim(busy_, "reset", "ReferenceAligner.reset");
    core_->reset();
  }

  // Reading the estimate while process() runs in another thread would race: claim too.
  template <typename F>
  auto read(F f) const {
    const Claim claim(busy_, "a property", "ReferenceAligner");
    return f(*core_);
  }

  const anunzi::ReferenceAligner& core() const { return *core_; }

 private:
  std::unique_ptr<anunzi::ReferenceAligner> core_;
  mutable std::atomic<const char*> busy_{nullptr};
};

class PyTimedTap {
 public:
  PyTimedTap(long long sample_capacity, long long block_capacity) {
    if (sample_capacity < 1 || sample_capacity > (1LL << 31) || block_capacity < 1 ||
        block_capacity > (1LL << 24)) {
      throw py::value_error("capacities must be positive (samples up to 2**31)");
    }
    tap_ = std::make_unique<anunzi::TimedTap>(static_cast<std::size_t>(sample_capacity),
                                              static_cast<std::size_t>(block_capacity));
  }

  bool push(py::handle samples, double time, long long real) {
    const Claim claim(producer_, "push", "TimedTap producer");
    FloatSpan s;
    acquire_floats(s, samples, "samples");
    const std::size_t audible = real < 0 ? s.n : static_cast<std::size_t>(real);
    return tap_->push(s.data, s.n, time, audible);
  }

  py::object pop() {
    const Claim claim(consumer_, "pop", "TimedTap consumer");
    anunzi::TapBlock block;
    if (!tap_->peek(block)) return py::none();
    py::array_t<float> samples(static_cast<py::ssize_t>(block.frames));
    if (!tap_->pop(block, samples.mutable_data(), block.frames)) return py::none();
    return py::make_tuple(block.time, block.first_sample, block.real, samples);
  }

  bool wait_ready(double timeout) {
    if (!(timeout >= 0.0) || timeout > 1e6) throw py::value_error("timeout must be >= 0");
    const Claim claim(consumer_, "wait_ready", "TimedTap consumer");
    if (tap_->ready()) return true;
    const auto wait = std::chrono::nanoseconds(static_cast<std::int64_t>(timeout * 1e9));
    return without_gil([&] { return tap_->wait_ready(wait); });
  }

  anunzi::TimedTap& core() { return *tap_; }
  const anunzi::TimedTap& core() const { return *tap_; }
  std::atomic<const char*>& producer_side() { return producer_; }

 private:
  std::unique_ptr<anunzi::TimedTap> tap_;
  std::atomic<const char*> producer_{nullptr};
  std::atomic<const char*> consumer_{nullptr};
};

class PyPlayoutMonitor {
 public:
  PyPlayoutMonitor(double sample_rate, double gap_ms, long long capacity) {
    if (!(sample_rate > 0) || !std::isfinite(sample_rate)) {
      throw py::value_error("sample_rate must be > 0");
    }
    if (!(gap_ms > 0) || gap_ms > 60000) throw py::value_error("gap_ms must be in (0, 60000]");
    if (capacity < 1 || capacity > (1 << 20)) throw py::value_error("capacity out of range");
    const auto gap = static_cast<std::size_t>(std::lround(gap_ms * sample_rate / 1000.0));
    monitor_ = std::make_unique<anunzi::PlayoutMonitor>(sample_rate, gap,
                                                        static_cast<std::size_t>(capacity));
  }

  void on_block(long long frames, long long real, double heard_at) {
    const Claim claim(producer_, "on_block", "PlayoutMonitor producer");
    if (frames < 0 || real < 0 || real > frames) {
      throw py::value_error("need 0 <= real <= frames");
    }
    monitor_->on_block(static_cast<std::size_t>(frames), static_cast<std::size_t>(real),
                       heard_at);
  }

  py::object pop() {
    const Claim claim(consumer_, "pop", "PlayoutMonitor consumer");
    anunzi::PlayoutEvent e;
    if (!monitor_->pop(e)) return py::none();
    return py::make_tuple(e.started != 0, e.heard_at, e.sample);
  }

  anunzi::PlayoutMonitor& core() { return *monitor_; }
  std::atomic<const char*>& producer_side() { return producer_; }

 private:
  std::unique_ptr<anunzi::PlayoutMonitor> monitor_;
  std::atomic<const char*> producer_{nullptr};
  std::atomic<const char*> consumer_{nullptr};
};

// Claims a producer side for a native callback until released.
class HeldSide {
 public:
  HeldSide() = default;
  void hold(std::atomic<const char*>& side, const char* what) {
    const char* other = nullptr;
    if (!side.compare_exchange_strong(other, "native device callback",
                                      std::memory_order_acquire, std::memory_order_relaxed)) {
      throw std::runtime_error(std::string(what) + ": " + other + " already produces into it");
    }
    side_ = &side;
  }
  void release() {
    if (side_ != nullptr) side_->store(nullptr, std::memory_order_release);
    side_ = nullptr;
  }
  ~HeldSide() { release(); }

 private:
  std::atomic<const char*>* side_ = nullptr;
};

std::uintptr_t address_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

class PyOutputEngine {
 public:
  PyOutputEngine(py::object jitter, py::object render, py::object playout) {
    capsule_ = jitter.attr("_native_consumer")();
    auto* buffer = static_cast<anunzi::JitterBuffer<float>*>(
        PyCapsule_GetPointer(capsule_.ptr(), kJitterConsumerCapsule));
    if (buffer == nullptr) throw py::error_already_set();
    engine_.jitter = buffer;
    if (!render.is_none()) {
      auto& tap = render.cast<PyTimedTap&>();
      render_side_.hold(tap.producer_side(), "render tap");
      engine_.render = &tap.core();
      render_ = render;
    }
    if (!playout.is_none()) {
      auto& monitor = playout.cast<PyPlayoutMonitor&>();
      playout_side_.hold(monitor.producer_side(), "playout monitor");
      engine_.playout = &monitor.core();
      playout_ = playout;
    }
  }

  // Gives the jitter buffer, tap and monitor back to Python. Only once the stream is closed:
  // a callback after this would play into freed claims.
  void close() {
    render_side_.release();
    playout_side_.release();
    capsule_ = py::none();
    closed_ = true;
  }

  std::uintptr_t user_data() const {
    if (closed_) throw py::value_error("the engine is closed");
    return address_of(&engine_);
  }
  const anunzi::OutputEngine& engine() const { return engine_; }

 private:
  anunzi::OutputEngine engine_;
  py::object capsule_, render_, playout_;
  HeldSide render_side_, playout_side_;
  bool closed_ = false;
};

class PyInputEngine {
 public:
  explicit PyInputEngine(py::object capture) {
    auto& tap = capture.cast<PyTimedTap&>();
    side_.hold(tap.producer_side(), "capture tap");
    engine_.capture = &tap.core();
    capture_ = capture;
  }
  void close() {
    side_.release();
    closed_ = true;
  }
  std::uintptr_t user_data() const {
    if (closed_) throw py::value_error("the engine is closed");
    return address_of(&engine_);
  }
  const anunzi::InputEngine& engine() const { return engine_; }

 private:
  anunzi::InputEngine engine_;
  py::object capture_;
  HeldSide side_;
  bool closed_ = false;
};

}  // namespace

PYBIND11_MODULE(_echo, m) {
  m.doc() = "anunzi-fast echo cancellation, native side: delay estimation and device taps.";
  py::module_::import("anunzi_fast._native");  // the jitter buffer's module, for its capsule

  m.def("steady_now", &anunzi::steady_seconds,
        "The clock device blocks are stamped with (seconds, monotonic).");
  m.def("output_callback_address",
        [] { return reinterpret_cast<std::uintptr_t>(&anunzi::anunzi_output_callback); },
        "Address of the C output callback (PortAudio's PaStreamCallback signature).");
  m.def("input_callback_address",
        [] { return reinterpret_cast<std::uintptr_t>(&anunzi::anunzi_input_callback); },
        "Address of the C input callback (PortAudio's PaStreamCallback signature).");

  py::class_<PyReferenceAligner>(m, "ReferenceAligner",
                                 "GCC-PHAT delay estimation and the reference delay line.\n"
                                 "One thread at a time (a second one gets RuntimeError).")
      .def(py::init<int, double, double, double, double>(), py::arg("sample_rate"),
           py::kw_only(), py::arg("max_delay_ms") = 500.0, py::arg("initial_delay_ms") = 0.0,
           py::arg("margin_ms") = 8.0, py::arg("engage_ms") = 0.0)
      .def("process", &PyReferenceAligner::process, py::arg("reference"), py::arg("capture"),
           py::arg("out") = py::none(),
           "Feed both signals (float32, equal length); return the reference delayed by the\n"
           "applied delay (a new array, or out). The GIL is released.")
      .def("reset", &PyReferenceAligner::reset, "Forget the estimate and the history.")
      .def_property_readonly("delay_ms", [](const PyReferenceAligner& a) {
        return a.read([](const anunzi::ReferenceAligner& c) { return c.estimator().delay_ms(); });
      })
      .def_property_readonly("engaged", [](const PyReferenceAligner& a) {
        return a.read([](const anunzi::ReferenceAligner& c) { return c.engaged(); });
      })
      .def_property_readonly("engage_ms", [](const PyReferenceAligner& a) {
        return a.read([](const anunzi::ReferenceAligner& c) { return c.engage_ms(); });
      })
      .def_property_readonly("has_estimate", [](const PyReferenceAligner& a) {
        return a.read(
            [](const anunzi::ReferenceAligner& c) { return c.estimator().has_estimate(); });
      })
      .def_property_readonly("confidence", [](const PyReferenceAligner& a) {
        return a.read(
            [](const anunzi::ReferenceAligner& c) { return c.estimator().confidence(); });
      })
      .def_property_readonly("candidate_ms", [](const PyReferenceAligner& a) {
        return a.read(
            [](const anunzi::ReferenceAligner& c) { return c.estimator().candidate_ms(); });
      })
      .def_property_readonly("changes", [](const PyReferenceAligner& a) {
        return a.read([](const anunzi::ReferenceAligner& c) { return c.estimator().changes(); });
      })
      .def_property_readonly("active_hops", [](const PyReferenceAligner& a) {
        return a.read(
            [](const anunzi::ReferenceAligner& c) { return c.estimator().active_hops(); });
      })
      .def_property_readonly("applied_delay_ms", [](const PyReferenceAligner& a) {
        return a.read([](const anunzi::ReferenceAligner& c) {
          return static_cast<double>(c.applied_delay_samples()) * 1000.0 /
                 c.estimator().config().sample_rate;
        });
      })
      .def_property_readonly("margin_ms", [](const PyReferenceAligner& a) {
        return a.core().margin_ms();
      })
      .def_property_readonly("max_delay_ms", [](const PyReferenceAligner& a) {
        return a.core().estimator().config().max_delay_ms;
      })
      .def_property_readonly("sample_rate", [](const PyReferenceAligner& a) {
        return a.core().estimator().config().sample_rate;
      });

  py::class_<PyTimedTap>(m, "TimedTap",
                         "Time-stamped blocks from one producer (a device callback) to one\n"
                         "consumer; a block that does not fit is dropped whole and counted.")
      .def(py::init<long long, long long>(), py::arg("sample_capacity"),
           py::arg("block_capacity") = 1024)
      .def("push", &PyTimedTap::push, py::arg("samples"), py::arg("time"), py::arg("real") = -1,
           "Producer side: store a float32 block stamped with `time`; False if dropped.")
      .def("pop", &PyTimedTap::pop,
           "Consumer side: (time, first_sample, real, samples) of the next block, or None.")
      .def("wait_ready", &PyTimedTap::wait_ready, py::arg("timeout"),
           "Consumer side: wait (GIL released) until a block is ready; whether one is.")
      .def_property_readonly("dropped_blocks",
                             [](const PyTimedTap& t) { return t.core().dropped_blocks(); })
      .def_property_readonly("dropped_samples",
                             [](const PyTimedTap& t) { return t.core().dropped_samples(); })
      .def_property_readonly("sample_capacity",
                             [](const PyTimedTap& t) { return t.core().sample_capacity(); });

  py::class_<PyPlayoutMonitor>(m, "PlayoutMonitor",
                               "When the agent starts and stops being heard, from the blocks\n"
                               "a speaker played (one producer, one consumer).")
      .def(py::init<double, double, long long>(), py::arg("sample_rate"), py::kw_only(),
           py::arg("gap_ms") = 100.0, py::arg("capacity") = 256)
      .def("on_block", &PyPlayoutMonitor::on_block, py::arg("frames"), py::arg("real"),
           py::arg("heard_at"), "Producer side: a block was played.")
      .def("pop", &PyPlayoutMonitor::pop,
           "Consumer side: (started, heard_at, sample) of the next event, or None.")
      .def_property_readonly("frames_played",
                             [](PyPlayoutMonitor& p) { return p.core().frames_played(); })
      .def_property_readonly("audio_played",
                             [](PyPlayoutMonitor& p) { return p.core().audio_played(); })
      .def_property_readonly("dropped_events",
                             [](PyPlayoutMonitor& p) { return p.core().dropped_events(); });

  py::class_<PyOutputEngine>(m, "OutputEngine",
                             "The speaker's C callback state: plays a float32 JitterBuffer\n"
                             "(claiming its consumer side) into a render tap and a monitor.")
      .def(py::init<py::object, py::object, py::object>(), py::arg("jitter_buffer"),
           py::arg("render"), py::arg("playout"))
      .def("close", &PyOutputEngine::close, "Release the claims (after the stream closed).")
      .def_property_readonly("user_data", &PyOutputEngine::user_data)
      .def_property_readonly("callbacks",
                             [](const PyOutputEngine& e) { return e.engine().callbacks.load(); })
      .def_property_readonly(
          "status_flags", [](const PyOutputEngine& e) { return e.engine().status_flags.load(); })
      .def_property_readonly("output_latency", [](const PyOutputEngine& e) {
        return e.engine().output_latency.load();
      });

  py::class_<PyInputEngine>(m, "InputEngine",
                            "The microphone's C callback state: captured blocks into a tap.")
      .def(py::init<py::object>(), py::arg("capture"))
      .def("close", &PyInputEngine::close, "Release the claim (after the stream closed).")
      .def_property_readonly("user_data", &PyInputEngine::user_data)
      .def_property_readonly("callbacks",
                             [](const PyInputEngine& e) { return e.engine().callbacks.load(); })
      .def_property_readonly(
          "status_flags", [](const PyInputEngine& e) { return e.engine().status_flags.load(); })
      .def_property_readonly("input_latency", [](const PyInputEngine& e) {
        return e.engine().input_latency.load();
      });
}
