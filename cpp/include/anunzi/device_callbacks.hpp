#pragma once
// PortAudio stream callbacks implemented in C++, so that the speaker and the microphone run
// without Python (and without its GIL) on the audio thread.
//
// Nothing here includes or links PortAudio: a callback only needs PortAudio's callback
// signature and its time-info struct, declared below with the same layout (PortAudio's stable
// ABI since v19: three PaTime doubles). Whoever opens the stream (sounddevice's Pa_OpenStream
// through cffi, or a test through ctypes) passes `output_callback`/`input_callback` and the
// engine's address as user data. Streams must be mono float32, interleaved.
//
// Times: each block is stamped on std::chrono::steady_clock (steady_seconds()), as "now"
// plus the device's own DAC lead (output) or minus its ADC lag (input), so that blocks from
// two separate streams land on one clock whatever each stream's time base is. This is
// LiveKit's derivation of the path delay (output latency + input latency), done per block.
#include <atomic>
#include <cstdint>

#include "anunzi/audio_tap.hpp"
#include "anunzi/jitter_buffer.hpp"

namespace anunzi {

// PortAudio's PaStreamCallbackTimeInfo, field for field.
struct DeviceTimeInfo {
  double input_buffer_adc_time;
  double current_time;
  double output_buffer_dac_time;
};

// PortAudio's callback: returns paContinue (0).
using DeviceCallback = int (*)(const void* input, void* output, unsigned long frames,
                               const DeviceTimeInfo* time, unsigned long status_flags,
                               void* user_data);

double steady_seconds() noexcept;

// The speaker: plays the jitter buffer (its consumer side), copies what it played into the
// render tap with the time it is heard, and tells the playout monitor.
struct OutputEngine {
  JitterBuffer<float>* jitter = nullptr;  // required
  TimedTap* render = nullptr;             // optional
  PlayoutMonitor* playout = nullptr;      // optional
  std::atomic<std::uint64_t> callbacks{0};
  std::atomic<std::uint64_t> status_flags{0};  // callbacks that reported an xrun
  std::atomic<double> output_latency{0.0};     // DAC time - now, of the latest block (s)
};

// The microphone: copies each captured block into the capture tap with its capture time.
struct InputEngine {
  TimedTap* capture = nullptr;  // required
  std::atomic<std::uint64_t> callbacks{0};
  std::atomic<std::uint64_t> status_flags{0};
  std::atomic<double> input_latency{0.0};  // now - ADC time, of the latest block (s)
};

// Audio thread only (one stream per engine). user_data: the engine.
extern "C" int anunzi_output_callback(const void* input, void* output, unsigned long frames,
                                      const DeviceTimeInfo* time, unsigned long status_flags,
                                      void* user_data);
extern "C" int anunzi_input_callback(const void* input, void* output, unsigned long frames,
                                     const DeviceTimeInfo* time, unsigned long status_flags,
                                     void* user_data);

}  // namespace anunzi
