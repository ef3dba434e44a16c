// ctest for the streaming resampler: chunked == one-shot bit for bit on every ISA path,
// alignment and accuracy of a resampled tone, integer rounding/clipping, and API misuse.
// Kept small enough to run in seconds under -fsanitize=address,undefined.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>
#include <vector>

#include "anunzi/resampler.hpp"
#include "check.hpp"

namespace {

using anunzi::Isa;
using anunzi::Quality;
using anunzi::Resampler;
using anunzi::SampleType;
using anunzi::StridedConstView;
using anunzi::StridedView;

constexpr double kPi = 3.14159265358979323846;

template <typename T>
SampleType type_of();
template <>
SampleType type_of<float>() { return SampleType::kFloat32; }
template <>
SampleType type_of<double>() { return SampleType::kFloat64; }
template <>
SampleType type_of<std::int16_t>() { return SampleType::kInt16; }

// Feeds interleaved `x` ([frames][channels]) in chunks cycling through `sizes`; the last call
// has last=true. Returns the concatenated interleaved output.
template <typename T>
std::vector<T> run(Resampler& r, const std::vector<T>& x, std::size_t channels,
                   const std::vector<std::size_t>& sizes) {
  std::vector<T> y;
  const std::size_t frames = x.size() / channels;
  std::size_t pos = 0, k = 0;
  while (true) {
    const std::size_t n = std::min(sizes[k++ % sizes.size()], frames - pos);
    const bool last = pos + n == frames;
    const StridedConstView in{x.data() + pos * channels, type_of<T>(), n,
                              static_cast<std::ptrdiff_t>(channels), 1};
    const std::size_t n_out = r.output_frames_for(n, last);
    const std::size_t old = y.size();
    y.resize(old + n_out * channels);
    const StridedView out{y.data() + old, type_of<T>(), n_out,
                          static_cast<std::ptrdiff_t>(channels), 1};
    CHECK(r.process(in, last, out) == n_out);
    pos += n;
    if (last) break;
  }
  return y;
}

// Long enough to cross the engine's internal 4096-frame blocks, with the cascade's tail.
void test_long_multichannel(Isa isa) {
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (const auto& p : {std::pair<double, double>{16000, 44100}, {48000, 16000}, {16000, 48000}}) {
    const std::size_t channels = 3, frames = 10007;
    std::vector<float> x(frames * channels);
    for (auto& v : x) v = noise(rng);
    Resampler one(p.first, p.second, channels, Quality::kHigh, SampleType::kFloat32, isa);
    const auto ref = run(one, x, channels, {frames});
    CHECK(ref.size() / channels == one.oneshot_length(frames));
    Resampler s(p.first, p.second, channels, Quality::kHigh, SampleType::kFloat32, isa);
    const auto y = run(s, x, channels, {4095, 1, 6000});
    CHECK(y.size() == ref.size() &&
          std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
  }
}

void test_streaming_matches_oneshot(Isa isa) {
  // Every kind of stage and cascade among them: a half-band then 2/3 (48 -> 16), a half-band
  // then 320/441 in lanes (44.1 -> 16), three 2:1 stages (192 -> 24), 2:1 up then a wide 3/2
  // or 441/320 (16 -> 48, 16 -> 44.1), one stage of many phases (44.1 -> 48, 44.1 -> 32),
  // interpolated rows (7919 -> 16), and single stages of larger integer ratios.
  const double pairs[][2] = {{48000, 16000}, {16000, 48000}, {44100, 48000},  {16000, 44100},
                             {44100, 32000}, {7919, 16000},  {8000, 40000},   {56000, 8000},
                             {128000, 8000}, {44100, 16000}, {192000, 24000}};
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (const auto& p : pairs) {
    for (Quality q : {Quality::kQuick, Quality::kHigh, Quality::kVeryHigh}) {
      const std::size_t channels = 2;
      std::vector<float> x(1237 * channels);
      for (auto& v : x) v = noise(rng);
      Resampler one(p[0], p[1], channels, q, SampleType::kFloat32, isa);
      const auto ref = run(one, x, channels, {x.size()});
      CHECK(ref.size() / channels == one.oneshot_length(1237));
      for (const auto& sizes : std::vector<std::vector<std::size_t>>{
               {1}, {0, 3, 0, 17}, {160}, {1000, 1}}) {
        Resampler s(p[0], p[1], channels, q, SampleType::kFloat32, isa);
        const auto y = run(s, x, channels, sizes);
        CHECK(y.size() == ref.size());
        CHECK(std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)) == 0);
      }
      // clear() gives a fresh stream.
      one.clear();
      const auto again = run(one, x, channels, {300});
      CHECK(std::memcmp(again.data(), ref.data(), ref.size() * sizeof(float)) == 0);
    }
  }
}

double tone_error_db(double in_rate, double out_rate, Quality q, Isa isa) {
  const std::size_t n = static_cast<std::size_t>(in_rate / 4);
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = 0.5 * std::sin(2 * kPi * 1000.0 * i / in_rate);
  Resampler r(in_rate, out_rate, 1, q, SampleType::kFloat64, isa);
  const auto y = run(r, x, 1, {n});
  const std::size_t edge = static_cast<std::size_t>(out_rate / 50);
  double err = 0, ref = 0;
  for (std::size_t i = edge; i + edge < y.size(); ++i) {
    const double want = 0.5 * std::sin(2 * kPi * 1000.0 * i / out_rate);
    err += (y[i] - want) * (y[i] - want);
    ref += want * want;
  }
  return 10 * std::log10(err / ref);
}

void test_tone_alignment(Isa isa) {
  CHECK(tone_error_db(48000, 16000, Quality::kHigh, isa) < -120);
  CHECK(tone_error_db(16000, 44100, Quality::kHigh, isa) < -120);
  CHECK(tone_error_db(7919, 16000, Quality::kHigh, isa) < -120);
  CHECK(tone_error_db(44100, 48000, Quality::kVeryHigh, isa) < -150);
}

void test_int16_round_and_clip(Isa isa) {
  std::vector<std::int16_t> silence(480, 0);
  Resampler r(48000, 16000, 1, Quality::kHigh, SampleType::kInt16, isa);
  for (auto v : run(r, silence, 1, {100})) CHECK(v == 0);
  CHECK(r.num_clips() == 0);
  std::vector<std::int16_t> square(2000);
  for (std::size_t i = 0; i < square.size(); ++i) square[i] = (i / 10) % 2 ? 32767 : -32768;
  Resampler c(48000, 16000, 1, Quality::kHigh, SampleType::kInt16, isa);
  run(c, square, 1, {77});
  CHECK(c.num_clips() > 0);
}

void test_misuse() {
  auto throws_invalid = [](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(throws_invalid([] { Resampler(0, 16000, 1, Quality::kHigh, SampleType::kFloat32, Isa::kPortable); }));
  CHECK(throws_invalid([] { Resampler(NAN, 16000, 1, Quality::kHigh, SampleType::kFloat32, Isa::kPortable); }));
  CHECK(throws_invalid([] { Resampler(48000, 16000, 0, Quality::kHigh, SampleType::kFloat32, Isa::kPortable); }));
  CHECK(throws_invalid([] { Resampler(48000, 16000, 1, static_cast<Quality>(3), SampleType::kFloat32, Isa::kPortable); }));

  Resampler r(48000, 16000, 1, Quality::kHigh, SampleType::kFloat32, Isa::kPortable);
  float in[4] = {0, 0, 0, 0};
  float out[4];
  const StridedConstView iv{in, SampleType::kFloat32, 4, 1, 1};
  CHECK(throws_invalid([&] { r.process(iv, true, StridedView{out, SampleType::kFloat32, 3, 1, 1}); }));
  CHECK(r.process(iv, true, StridedView{out, SampleType::kFloat32, 1, 1, 1}) == 1);
  bool logic = false;
  try {
    r.process(iv, false, StridedView{out, SampleType::kFloat32, 0, 1, 1});
  } catch (const std::logic_error&) {
    logic = true;
  }
  CHECK(logic);
}

void test_latency_and_delay() {
  Resampler r(48000, 16000, 1, Quality::kHigh, SampleType::kFloat32, Isa::kPortable);
  CHECK(r.latency_frames() / 16000 <= 0.006);
  CHECK(r.delay() == 0);
  std::vector<float> x(4800, 0.0f);
  run(r, x, 1, {480, 4800});  // ends with last=true: nothing owed
  CHECK(r.delay() == 0);
}

// The exact table of 96000 -> 4001 (a prime) at VHQ would be 4001 rows of 6000+ doubles,
// 190 MB; above 8 MB the rows are interpolated. The decision once read the tap count before it
// was computed, so only up factors above 4096 were ever interpolated.
void test_large_tables_are_interpolated() {
  Resampler r(96000, 4001, 1, Quality::kVeryHigh, SampleType::kFloat64, Isa::kPortable);
  CHECK(r.out_step() == 4001 && r.in_step() == 96000);
  CHECK(r.interpolated_phases());
  CHECK(r.num_phases() < 300);
  CHECK(4001 * r.taps_per_output() * sizeof(double) > (std::size_t{8} << 20));
  // Small tables stay exact.
  Resampler small(44100, 32000, 1, Quality::kVeryHigh, SampleType::kFloat64, Isa::kPortable);
  CHECK(!small.interpolated_phases() && small.num_phases() == 320);
}

void test_design_cache_stays_under_its_cap() {
  const auto stats = anunzi::design_cache_stats();
  CHECK(stats.limit_bytes == std::size_t{64} << 20);
  CHECK(stats.entries > 0 && stats.bytes > 0 && stats.bytes <= stats.limit_bytes);
  CHECK(stats.designs_computed >= stats.entries);
}

// A one-shot split across threads equals the single pass bit for bit: each part's stream
// starts mid-signal with start_at_output, and its slices of input and output must line up.
void test_threaded_oneshot(Isa isa) {
  const double pairs[][2] = {{48000, 16000}, {16000, 48000}, {44100, 48000}, {16000, 44100}};
  std::mt19937 gen(7);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (const auto& pair : pairs) {
    Resampler r(pair[0], pair[1], 2, Quality::kHigh, SampleType::kFloat32, isa);
    std::vector<float> x(2 * 300007);
    for (float& v : x) v = noise(gen);
    const std::size_t frames = x.size() / 2;
    const StridedConstView in{x.data(), SampleType::kFloat32, frames, 2, 1};
    const std::size_t n_out = r.oneshot_frames(frames);
    CHECK(r.output_frames_for(frames, true) == n_out);
    std::vector<float> single(n_out * 2);
    r.process(in, true, {single.data(), SampleType::kFloat32, n_out, 2, 1});
    for (unsigned threads : {2u, 3u, 5u}) {
      CHECK(r.oneshot_parts(frames, threads) == threads);
      std::vector<float> split(n_out * 2, -1.0f);
      r.oneshot(in, {split.data(), SampleType::kFloat32, n_out, 2, 1}, threads);
      CHECK(std::memcmp(split.data(), single.data(), split.size() * sizeof(float)) == 0);
    }
    CHECK(r.oneshot_parts(10, 8) == 1);  // too little work to share
  }
}

}  // namespace

int main() {
  for (Isa isa : {Isa::kPortable, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (!anunzi::isa_supported(isa)) {
      std::printf("skipping ISA %s: not supported by this CPU\n", anunzi::isa_name(isa));
      continue;
    }
    test_streaming_matches_oneshot(isa);
    test_long_multichannel(isa);
    test_tone_alignment(isa);
    test_int16_round_and_clip(isa);
    test_threaded_oneshot(isa);
  }
  test_misuse();
  test_latency_and_delay();
  test_large_tables_are_interpolated();
  test_design_cache_stays_under_its_cap();
  if (anunzi_test::failures() != 0) {
    std::fprintf(stderr, "%d check(s) failed\n", anunzi_test::failures());
    return 1;
  }
  std::printf("test_resampler: all checks passed\n");
  return 0;
}
