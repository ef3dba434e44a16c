// JitterBuffer: single-thread semantics (prefill, underrun, overflow, clear, accounting) and a
// two-thread stress (a network-like producer with clears against an audio-callback consumer)
// checking that real samples come out in order, none invented, and every sample accounted
// for. Run under -fsanitize=thread and -fsanitize=address,undefined by .ci/run.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "anunzi/jitter_buffer.hpp"
#include "check.hpp"

namespace {

using anunzi_test::check;

template <typename T>
bool accounted(const anunzi::JitterBuffer<T>& jb) {
  const auto s = jb.stats();
  return s.samples_in == s.samples_out + s.dropped + s.buffered;
}

void test_prefill_underrun_and_tail() {
  anunzi::JitterBuffer<int16_t> jb(/*prefill=*/6, /*max=*/20);
  std::vector<int16_t> out(4, 99);
  const int16_t chunk[4] = {1, 2, 3, 4};
  check(jb.pull(out.data(), 4) == 0 && out[0] == 0 && out[3] == 0, "empty: silence");
  check(jb.push(chunk, 4) == 0, "push below prefill");
  check(jb.pull(out.data(), 2) == 0 && !jb.playing(), "still prefilling (4 < 6)");
  check(jb.push(chunk, 4) == 0, "push reaches prefill");
  check(jb.pull(out.data(), 4) == 4 && jb.playing(), "playing after prefill");
  check(out[0] == 1 && out[1] == 2 && out[2] == 3 && out[3] == 4, "samples in order");
  out.assign(8, 99);
  check(jb.pull(out.data(), 8) == 4, "runs dry mid-call");
  check(out[3] == 4 && out[4] == 0 && out[7] == 0, "real samples then silence");
  auto s = jb.stats();
  check(s.underruns == 1 && s.underrun_samples == 4 && !jb.playing(), "underrun counted");
  // A short tail below the prefill starts once it has waited a prefill's worth of pulls.
  check(jb.push(chunk, 2) == 0, "tail below prefill");
  out.assign(4, 99);
  check(jb.pull(out.data(), 4) == 0, "tail waits (4 samples of 6)");
  check(jb.pull(out.data(), 4) == 2 && out[0] == 1 && out[1] == 2, "tail played after waiting");
  s = jb.stats();
  check(s.samples_in == 10 && s.samples_out == 10 && s.buffered == 0, "counts");
  check(s.silence_samples == 4 + 2 + 4 + 4 + 2 && accounted(jb), "silence counted");
}

void test_overflow_drops_oldest() {
  anunzi::JitterBuffer<int16_t> jb(0, 5);
  const int16_t a[4] = {1, 2, 3, 4};
  const int16_t b[3] = {5, 6, 7};
  check(jb.push(a, 4) == 0, "fits");
  check(jb.push(b, 3) == 2, "two oldest dropped");
  int16_t out[5] = {};
  check(jb.pull(out, 5) == 5 && out[0] == 3 && out[4] == 7, "newest kept, in order");
  const int16_t big[8] = {10, 11, 12, 13, 14, 15, 16, 17};
  check(jb.push(big, 8) == 3, "oversized chunk keeps its newest max samples");
  check(jb.pull(out, 5) == 5 && out[0] == 13 && out[4] == 17, "tail of the big chunk");
  const auto s = jb.stats();
  check(s.dropped == 5 && accounted(jb), "dropped counted");
}

void test_clear() {
  anunzi::JitterBuffer<float> jb(2, 100);
  const float x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  float out[4] = {};
  check(jb.push(x, 10) == 0 && jb.pull(out, 4) == 4 && jb.playing(), "playing");
  check(jb.clear() == 6 && !jb.playing() && jb.stats().buffered == 0, "clear drops all");
  check(jb.pull(out, 4) == 0 && out[0] == 0.0f, "silence after clear");
  check(jb.push(x, 1) == 0 && jb.pull(out, 1) == 0, "prefills again after clear");
  const auto s = jb.stats();
  check(s.clears == 1 && s.dropped == 6 && s.underruns == 0 && accounted(jb),
        "clear is not an underrun");
}

void test_bad_arguments() {
  bool threw = false;
  try {
    anunzi::JitterBuffer<int16_t> jb(10, 5);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "prefill > max rejected");
  threw = false;
  try {
    anunzi::JitterBuffer<int16_t> jb(0, 0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  check(threw, "max 0 rejected");
}

// Producer pushes 1, 2, 3, ... (exact in float up to 2^24) in random chunks, sometimes clears;
// the consumer pulls random block sizes. Real samples must be strictly increasing.
void stress(std::size_t prefill, std::size_t max_samples, uint64_t total, uint32_t seed) {
  anunzi::JitterBuffer<float> jb(prefill, max_samples);
  std::atomic<bool> done{false};
  std::thread producer([&] {
    std::mt19937 rng(seed);
    std::vector<float> chunk(max_samples + 16);
    uint64_t next = 1;
    while (next <= total) {
      const std::size_t n = std::min<uint64_t>(
          std::uniform_int_distribution<std::size_t>(1, chunk.size())(rng), total - next + 1);
      for (std::size_t k = 0; k < n; ++k) chunk[k] = static_cast<float>(next + k);
      (void)jb.push(chunk.data(), n);
      next += n;
      if (rng() % 64 == 0) (void)jb.clear();
      if (rng() % 4 == 0) std::this_thread::yield();
    }
    done.store(true, std::memory_order_release);
  });
  // A third thread reads stats throughout: buffered must stay within [0, max].
  std::atomic<uint64_t> worst_buffered{0};
  std::thread observer([&] {
    while (!done.load(std::memory_order_acquire)) {
      const uint64_t b = jb.stats().buffered;
      if (b > worst_buffered.load(std::memory_order_relaxed)) worst_buffered.store(b);
    }
  });
  std::mt19937 rng(seed + 1);
  std::vector<float> out(max_samples + 16);
  float last = 0.0f;
  uint64_t out_of_order = 0;
  uint64_t nonzero_silence = 0;
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    const std::size_t n = std::uniform_int_distribution<std::size_t>(1, out.size())(rng);
    const std::size_t got = jb.pull(out.data(), n);
    for (std::size_t k = 0; k < got; ++k) {
      out_of_order += !(out[k] > last);
      last = out[k];
    }
    for (std::size_t k = got; k < n; ++k) nonzero_silence += out[k] != 0.0f;
    if (finished && jb.stats().buffered == 0) break;
  }
  producer.join();
  observer.join();
  check(worst_buffered.load() <= max_samples, "stats.buffered seen from a third thread in range");
  const auto s = jb.stats();
  std::printf("jitter stress prefill=%zu max=%zu: in=%llu out=%llu dropped=%llu clears=%llu "
              "underruns=%llu\n",
              prefill, max_samples, static_cast<unsigned long long>(s.samples_in),
              static_cast<unsigned long long>(s.samples_out),
              static_cast<unsigned long long>(s.dropped),
              static_cast<unsigned long long>(s.clears),
              static_cast<unsigned long long>(s.underruns));
  check(out_of_order == 0, "real samples strictly increasing (none repeated or invented)");
  check(nonzero_silence == 0, "silence is zero");
  check(s.samples_in == total && accounted(jb), "in == out + dropped + buffered");
}

}  // namespace

int main() {
  uint64_t total = 2'000'000;
  if (const char* s = std::getenv("ANUNZI_STRESS_SAMPLES")) {
    total = std::min<uint64_t>(std::strtoull(s, nullptr, 10), 1u << 24);
  }
  test_prefill_underrun_and_tail();
  test_overflow_drops_oldest();
  test_clear();
  test_bad_arguments();
  stress(0, 1, total / 10, 7);
  stress(3, 7, total / 4, 8);
  stress(960, 48000, total, 9);
  const bool passed = anunzi_test::failures() == 0;
  std::printf("%s\n", passed ? "all checks passed" : "SOME CHECKS FAILED");
  return passed ? 0 : 1;
}
