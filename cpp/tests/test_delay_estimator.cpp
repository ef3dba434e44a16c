// The delay estimator, the reference aligner, the timed taps and the device callbacks.
// Signals are synthetic speech-like noise (syllable envelopes, moving resonances, pauses)
// through a synthetic room (direct path, decaying reflections) plus noise. Run under
// -fsanitize=address,undefined and -fsanitize=thread by .ci/sanitize (the tap has a
// two-thread stress run).
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "anunzi/audio_tap.hpp"
#include "anunzi/delay_estimator.hpp"
#include "anunzi/device_callbacks.hpp"
#include "check.hpp"

namespace {

using anunzi::DelayEstimator;
using anunzi::DelayEstimatorConfig;
using anunzi::ReferenceAligner;

constexpr double kPi = 3.14159265358979323846;

// Speech-like: noise through a resonator whose centre moves, in syllables of ~200 ms with a
// pause now and then.
std::vector<float> speech_like(std::size_t n, int rate, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<float> out(n);
  double y1 = 0, y2 = 0, centre = 800, envelope_phase = 0;
  double syllable = 0.2, gain = 1.0;
  for (std::size_t i = 0; i < n; ++i) {
    envelope_phase += 1.0 / (syllable * rate);
    if (envelope_phase >= 1.0) {
      envelope_phase -= 1.0;
      syllable = 0.12 + 0.2 * uniform(rng);
      centre = 300 + 2500 * uniform(rng);
      gain = uniform(rng) < 0.15 ? 0.0 : 0.5 + uniform(rng);  // a pause now and then
    }
    const double r = 0.97, w = 2 * kPi * centre / rate;
    const double y = noise(rng) + 2 * r * std::cos(w) * y1 - r * r * y2;
    y2 = y1;
    y1 = y;
    const double envelope = std::sin(kPi * envelope_phase);
    out[i] = static_cast<float>(0.02 * gain * envelope * y);
  }
  return out;
}

// A room: the direct path after `delay` samples, then exponentially decaying reflections.
std::vector<float> room(const std::vector<float>& x, std::size_t delay, int rate, unsigned seed,
                        double noise_level = 1e-4) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  const std::size_t taps = static_cast<std::size_t>(0.15 * rate);
  std::vector<double> h(taps, 0.0);
  h[0] = 0.6;
  for (std::size_t k = 1; k < taps; ++k) {
    h[k] = 0.04 * noise(rng) * std::exp(-6.9 * k / (0.3 * rate));
  }
  // Sparse reflections keep the test fast: a direct path and every 7th tap.
  std::vector<float> y(x.size(), 0.0f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    double acc = 0;
    for (std::size_t k = 0; k < taps && k <= i; k += (k == 0 ? 7 : 7)) acc += h[k] * x[i - k];
    y[i] = static_cast<float>(acc);
  }
  std::vector<float> out(x.size(), 0.0f);
  for (std::size_t i = delay; i < x.size(); ++i) out[i] = y[i - delay];
  for (auto& v : out) v += static_cast<float>(noise_level * noise(rng));
  return out;
}

void feed(DelayEstimator& e, const std::vector<float>& ref, const std::vector<float>& cap,
          std::size_t chunk) {
  for (std::size_t i = 0; i < ref.size(); i += chunk) {
    const std::size_t n = std::min(chunk, ref.size() - i);
    e.process(ref.data() + i, cap.data() + i, n);
  }
}

void test_fft_matches_direct_dft() {
  std::mt19937 rng(1);
  std::normal_distribution<double> g(0.0, 1.0);
  for (std::size_t size = 1; size <= 1024; size <<= 1) {
    std::vector<std::complex<double>> x(size);
    for (auto& v : x) v = {g(rng), g(rng)};
    auto y = x;
    const auto tw = anunzi::make_twiddles(size);
    anunzi::fft_in_place(y.data(), size, tw, false);
    double worst = 0;
    for (std::size_t k = 0; k < size; ++k) {
      std::complex<double> acc{0, 0};
      for (std::size_t n = 0; n < size; ++n) {
        acc += x[n] * std::polar(1.0, -2 * kPi * double(k * n % size) / double(size));
      }
      worst = std::max(worst, std::abs(acc - y[k]));
    }
    CHECK(worst < 1e-9 * double(size));
    anunzi::fft_in_place(y.data(), size, tw, true);
    worst = 0;
    for (std::size_t n = 0; n < size; ++n) {
      worst = std::max(worst, std::abs(y[n] / double(size) - x[n]));
    }
    CHECK(worst < 1e-12 * double(size) + 1e-12);
  }
}

void test_finds_bulk_delays(int rate) {
  for (double delay_ms : {0.0, 50.0, 100.0, 180.0, 250.0, 400.0}) {
    const std::size_t n = static_cast<std::size_t>(4.0 * rate);
    const auto far = speech_like(n, rate, 7);
    const auto d = static_cast<std::size_t>(delay_ms * rate / 1000);
    const auto mic = room(far, d, rate, 3);
    DelayEstimatorConfig config;
    config.sample_rate = rate;
    DelayEstimator e(config);
    CHECK(!e.has_estimate() && e.delay_ms() == 0.0);
    feed(e, far, mic, 480);
    const bool ok = e.has_estimate() && std::abs(e.delay_ms() - delay_ms) <= 0.5;
    if (!ok) {
      std::fprintf(stderr, "rate %d delay %.0f ms: estimate %.2f (has %d, confidence %.2f)\n",
                   rate, delay_ms, e.delay_ms(), int(e.has_estimate()), e.confidence());
    }
    CHECK(ok);
    CHECK(e.confidence() > 0.3);
    CHECK(e.changes() == 0);  // the first estimate stays
  }
}

void test_hint_and_silence() {
  DelayEstimatorConfig config;
  config.sample_rate = 16000;
  config.initial_delay_ms = 42.0;
  DelayEstimator e(config);
  std::vector<float> zeros(16000 * 3, 0.0f);
  feed(e, zeros, zeros, 160);
  CHECK(!e.has_estimate());
  CHECK(e.delay_ms() == 42.0);
  CHECK(e.active_hops() == 0 && e.hops() > 10);
  // Non-finite samples are ignored, never spread.
  std::vector<float> bad(16000, std::nanf(""));
  feed(e, bad, bad, 333);
  CHECK(e.delay_ms() == 42.0);
  e.process(nullptr, nullptr, 0);
  bool threw = false;
  try {
    config.sample_rate = 4000;
    DelayEstimator wrong(config);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

void test_chunking_does_not_matter() {
  const int rate = 16000;
  const auto far = speech_like(3 * rate, rate, 11);
  const auto mic = room(far, 1600, rate, 5);
  DelayEstimatorConfig config;
  config.sample_rate = rate;
  DelayEstimator a(config), b(config), c(config);
  feed(a, far, mic, 1);
  feed(b, far, mic, 7);
  feed(c, far, mic, 4800);
  CHECK(a.delay_ms() == b.delay_ms() && b.delay_ms() == c.delay_ms());
  CHECK(a.confidence() == c.confidence());
}

void test_tracks_a_change_with_hysteresis() {
  const int rate = 16000;
  const std::size_t half = 6 * rate;
  const auto far = speech_like(2 * half, rate, 21);
  auto first = room(far, 1600, rate, 9);   // 100 ms
  auto second = room(far, 2080, rate, 9);  // 130 ms
  std::vector<float> mic(first.begin(), first.begin() + half);
  mic.insert(mic.end(), second.begin() + half, second.end());
  DelayEstimatorConfig config;
  config.sample_rate = rate;
  DelayEstimator e(config);
  std::vector<float> far_first(far.begin(), far.begin() + half);
  std::vector<float> mic_first(mic.begin(), mic.begin() + half);
  feed(e, far_first, mic_first, 320);
  CHECK(std::abs(e.delay_ms() - 100.0) <= 0.5);
  CHECK(e.changes() == 0);
  std::vector<float> far_second(far.begin() + half, far.end());
  std::vector<float> mic_second(mic.begin() + half, mic.end());
  feed(e, far_second, mic_second, 320);
  const bool ok = std::abs(e.delay_ms() - 130.0) <= 0.5;
  if (!ok) std::fprintf(stderr, "after the change: %.2f ms\n", e.delay_ms());
  CHECK(ok);
  CHECK(e.changes() >= 1 && e.changes() <= 3);  // moved, but did not wander
}

void test_double_talk() {
  const int rate = 16000;
  const auto far = speech_like(5 * rate, rate, 31);
  const auto near = speech_like(5 * rate, rate, 77);
  auto mic = room(far, 2880, rate, 13);  // 180 ms
  for (std::size_t i = 0; i < mic.size(); ++i) mic[i] += near[i];  // as loud as the echo
  DelayEstimatorConfig config;
  config.sample_rate = rate;
  DelayEstimator e(config);
  feed(e, far, mic, 160);
  const bool ok = e.has_estimate() && std::abs(e.delay_ms() - 180.0) <= 0.5;
  if (!ok) std::fprintf(stderr, "double talk: %.2f ms, c=%.2f\n", e.delay_ms(), e.confidence());
  CHECK(ok);
}

void test_aligner_delays_the_reference_exactly() {
  const int rate = 16000;
  const auto far = speech_like(4 * rate, rate, 41);
  const auto mic = room(far, 1600, rate, 17);
  DelayEstimatorConfig config;
  config.sample_rate = rate;
  config.initial_delay_ms = 20.0;
  ReferenceAligner aligner(config, 5.0);
  CHECK(aligner.applied_delay_samples() == 240);  // (20 - 5) ms: the hint is used at once
  std::vector<float> aligned(far.size());
  std::size_t applied_before = aligner.applied_delay_samples();
  for (std::size_t i = 0; i < far.size(); i += 160) {
    aligner.process(far.data() + i, mic.data() + i, aligned.data() + i, 160);
    const std::size_t d = aligner.applied_delay_samples();
    if (d == applied_before) {
      for (std::size_t j = i; j < i + 160; ++j) {
        const float expected = j >= d ? far[j - d] : 0.0f;
        if (aligned[j] != expected) {
          CHECK(aligned[j] == expected);
          return;
        }
      }
    }
    applied_before = d;
  }
  CHECK(aligner.applied_delay_samples() == 1600 - 80);  // (100 - 5) ms
  aligner.reset();
  CHECK(aligner.applied_delay_samples() == 240);
  bool threw = false;
  try {
    ReferenceAligner wrong(config, -1.0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

void test_tap_keeps_blocks_whole() {
  anunzi::TimedTap tap(10, 4);
  const float a[6] = {1, 2, 3, 4, 5, 6};
  CHECK(tap.push(a, 6, 1.0, 6));
  CHECK(!tap.push(a, 6, 2.0, 6));  // only 4 free: dropped whole
  CHECK(tap.dropped_blocks() == 1 && tap.dropped_samples() == 6);
  CHECK(tap.push(a, 3, 3.0, 2));
  anunzi::TapBlock block;
  float out[16];
  CHECK(tap.peek(block) && block.frames == 6 && block.time == 1.0);
  CHECK(!tap.pop(block, out, 5));  // too small: still there
  CHECK(tap.pop(block, out, 16) && block.first_sample == 0 && out[5] == 6);
  CHECK(tap.pop(block, out, 16) && block.first_sample == 12 && block.real == 2 && out[2] == 3);
  CHECK(!tap.pop(block, out, 16) && !tap.ready());
}

void test_playout_monitor_events() {
  anunzi::PlayoutMonitor monitor(1000.0, 100);  // 1 kHz, a gap of 100 samples ends speech
  monitor.on_block(50, 0, 0.0);                 // silence
  monitor.on_block(50, 50, 0.05);               // speech starts at 0.05 s
  monitor.on_block(50, 20, 0.10);               // ends at 0.12 s (20 samples in)
  monitor.on_block(50, 0, 0.15);                // 80 samples of silence: not yet a gap
  anunzi::PlayoutEvent e;
  CHECK(monitor.pop(e) && e.started == 1 && e.heard_at == 0.05 && e.sample == 50);
  CHECK(!monitor.pop(e));
  monitor.on_block(50, 0, 0.20);  // 130 samples of silence: it ended
  CHECK(monitor.pop(e) && e.started == 0 && std::abs(e.heard_at - 0.12) < 1e-12 &&
        e.sample == 120);
  CHECK(monitor.frames_played() == 250 && monitor.audio_played() == 70);
}

void test_device_callbacks() {
  anunzi::JitterBuffer<float> jitter(0, 4800);
  anunzi::TimedTap render(4800, 64), capture(4800, 64);
  anunzi::PlayoutMonitor monitor(48000.0, 4800);
  anunzi::OutputEngine out_engine;
  out_engine.jitter = &jitter;
  out_engine.render = &render;
  out_engine.playout = &monitor;
  std::vector<float> speech(700, 0.25f);
  jitter.push(speech.data(), speech.size());
  std::vector<float> block(480, 9.0f);
  const anunzi::DeviceTimeInfo t{1.0, 2.0, 2.05};  // 50 ms output latency
  const double before = anunzi::steady_seconds();
  anunzi::anunzi_output_callback(nullptr, block.data(), 480, &t, 0, &out_engine);
  CHECK(block[0] == 0.25f && block[479] == 0.25f);
  anunzi::anunzi_output_callback(nullptr, block.data(), 480, nullptr, 1, &out_engine);
  CHECK(block[219] == 0.25f && block[220] == 0.0f);
  CHECK(out_engine.callbacks.load() == 2 && out_engine.status_flags.load() == 1);
  anunzi::TapBlock b;
  std::vector<float> got(480);
  CHECK(render.pop(b, got.data(), got.size()) && b.real == 480 && got[0] == 0.25f);
  CHECK(b.time >= before + 0.049 && b.time <= anunzi::steady_seconds() + 0.051);
  CHECK(render.pop(b, got.data(), got.size()) && b.real == 220 && b.first_sample == 480);
  anunzi::PlayoutEvent e;
  CHECK(monitor.pop(e) && e.started == 1);

  anunzi::InputEngine in_engine;
  in_engine.capture = &capture;
  std::vector<float> mic(480, 0.5f);
  const anunzi::DeviceTimeInfo ti{1.97, 2.0, 0.0};  // captured 30 ms ago
  anunzi::anunzi_input_callback(mic.data(), nullptr, 480, &ti, 0, &in_engine);
  CHECK(capture.pop(b, got.data(), got.size()) && got[0] == 0.5f && b.frames == 480);
  CHECK(std::abs(in_engine.input_latency.load() - 0.03) < 1e-9);
  CHECK(b.time <= anunzi::steady_seconds() - 0.029);
}

// One producer pushes numbered blocks of varying size; one consumer checks every sample.
void test_tap_two_threads() {
  anunzi::TimedTap tap(1024, 16);
  constexpr std::uint64_t kBlocks = 200000;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    std::vector<float> block(64);
    std::uint64_t next = 0;
    for (std::uint64_t b = 0; b < kBlocks; ++b) {
      const std::size_t n = 1 + b % 64;
      for (std::size_t i = 0; i < n; ++i) block[i] = static_cast<float>((next + i) % 65536);
      while (!tap.push(block.data(), n, double(b), n)) {
        // Retry the same samples: the dropped attempt still advanced the numbering.
        next += n;
        for (std::size_t i = 0; i < n; ++i) block[i] = static_cast<float>((next + i) % 65536);
        std::this_thread::yield();
      }
      next += n;
    }
    done.store(true);
  });
  std::vector<float> got(64);
  std::uint64_t blocks = 0, wrong = 0;
  anunzi::TapBlock b;
  while (!done.load() || tap.ready()) {
    if (!tap.pop(b, got.data(), got.size())) {
      std::this_thread::yield();
      continue;
    }
    for (std::size_t i = 0; i < b.frames; ++i) {
      if (got[i] != static_cast<float>((b.first_sample + i) % 65536)) ++wrong;
    }
    ++blocks;
  }
  producer.join();
  CHECK(wrong == 0);
  CHECK(blocks == kBlocks);
}

}  // namespace

// Below engage_ms the reference is left alone; from it the alignment applies; it is dropped
// again only below three quarters of engage_ms.
void test_aligner_engages_from_a_threshold() {
  const int rate = 16000;
  DelayEstimatorConfig config;
  config.sample_rate = rate;
  config.initial_delay_ms = 100.0;
  ReferenceAligner short_delay(config, 5.0, 150.0);
  CHECK(!short_delay.engaged() && short_delay.applied_delay_samples() == 0);
  config.initial_delay_ms = 150.0;
  ReferenceAligner at_threshold(config, 5.0, 150.0);
  CHECK(at_threshold.engaged() && at_threshold.applied_delay_samples() == 145 * 16);
  // The signals then say 100 ms, below three quarters of 150: the alignment is dropped.
  const auto far = speech_like(4 * rate, rate, 43);
  const auto mic = room(far, 1600, rate, 19);
  std::vector<float> aligned(far.size());
  for (std::size_t i = 0; i < far.size(); i += 160) {
    at_threshold.process(far.data() + i, mic.data() + i, aligned.data() + i, 160);
  }
  CHECK(at_threshold.estimator().has_estimate());
  CHECK(!at_threshold.engaged() && at_threshold.applied_delay_samples() == 0);  // 100 < 112.5
  bool threw = false;
  try {
    ReferenceAligner wrong(config, 5.0, -1.0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

int main() {
  test_fft_matches_direct_dft();
  test_finds_bulk_delays(16000);
  test_finds_bulk_delays(48000);
  test_hint_and_silence();
  test_chunking_does_not_matter();
  test_tracks_a_change_with_hysteresis();
  test_double_talk();
  test_aligner_delays_the_reference_exactly();
  test_aligner_engages_from_a_threshold();
  test_tap_keeps_blocks_whole();
  test_playout_monitor_events();
  test_device_callbacks();
  test_tap_two_threads();
  if (anunzi_test::failures() == 0) std::printf("test_delay_estimator: all checks passed\n");
  return anunzi_test::failures() != 0;
}
