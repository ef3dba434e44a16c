#include "anunzi/device_callbacks.hpp"

#include <chrono>
#include <cmath>
#include <cstring>

namespace anunzi {

namespace {

constexpr int kContinue = 0;  // paContinue

// A device latency from PortAudio's times, or 0 when the host API reports none (some report
// zeros, or garbage on a first callback): never more than a second, never negative.
double sane_latency(double later, double earlier) {
  const double d = later - earlier;
  return (std::isfinite(d) && d > 0.0 && d < 1.0) ? d : 0.0;
}

}  // namespace

double steady_seconds() noexcept {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

extern "C" int anunzi_output_callback(const void* /*input*/, void* output, unsigned long frames,
                                      const DeviceTimeInfo* time, unsigned long status_flags,
                                      void* user_data) {
  auto* engine = static_cast<OutputEngine*>(user_data);
  auto* out = static_cast<float*>(output);
  const double now = steady_seconds();
  const double lead = time ? sane_latency(time->output_buffer_dac_time, time->current_time) : 0.0;
  const std::size_t n = frames;
  const std::size_t real = engine->jitter->pull(out, n);
  const double heard_at = now + lead;
  if (engine->render) (void)engine->render->push(out, n, heard_at, real);
  if (engine->playout) engine->playout->on_block(n, real, heard_at);
  engine->output_latency.store(lead, std::memory_order_relaxed);
  if (status_flags) engine->status_flags.fetch_add(1, std::memory_order_relaxed);
  engine->callbacks.fetch_add(1, std::memory_order_relaxed);
  return kContinue;
}

extern "C" int anunzi_input_callback(const void* input, void* /*output*/, unsigned long frames,
                                     const DeviceTimeInfo* time, unsigned long status_flags,
                                     void* user_data) {
  auto* engine = static_cast<InputEngine*>(user_data);
  const double now = steady_seconds();
  const double lag = time ? sane_latency(time->current_time, time->input_buffer_adc_time) : 0.0;
  if (input != nullptr) {
    (void)engine->capture->push(static_cast<const float*>(input), frames, now - lag, frames);
  }
  engine->input_latency.store(lag, std::memory_order_relaxed);
  if (status_flags) engine->status_flags.fetch_add(1, std::memory_order_relaxed);
  engine->callbacks.fetch_add(1, std::memory_order_relaxed);
  return kContinue;
}

}  // namespace anunzi
