// Two-thread stress of SpscRing: a producer writes a counting sequence in random chunk sizes,
// a consumer reads it in other random chunk sizes and checks every sample. Run under
// -fsanitize=thread and -fsanitize=address,undefined by .ci/run.
// ANUNZI_STRESS_SAMPLES sets the samples per capacity (default 10,000,000).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "anunzi/spsc_ring.hpp"
#include "check.hpp"

namespace {

using anunzi_test::check;

// Waiting for the other side: spin briefly (a hand-off through a tiny ring takes well under a
// microsecond), then give the core away.
void back_off(unsigned& idle_rounds) {
  if (++idle_rounds < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

template <typename T>
T sample_for(uint64_t i) {
  return static_cast<T>(i % (uint64_t{1} << (8 * sizeof(T) - 1)));  // fits T, exact in float
}

// Returns the number of wrong samples seen by the consumer. With use_waits, a side that
// finds nothing to do blocks in wait_for_* instead of spinning itself.
template <typename T>
uint64_t stress(std::size_t capacity, uint64_t total, uint32_t seed, bool use_waits = false) {
  anunzi::SpscRing<T> ring(capacity);
  const std::size_t max_chunk = capacity * 2 + 7;  // chunks larger than the ring, too
  std::atomic<uint64_t> wrong{0};

  std::thread producer([&] {
    std::mt19937 rng(seed);
    std::vector<T> chunk(max_chunk);
    uint64_t next = 0;
    while (next < total) {
      const std::size_t want =
          std::min<uint64_t>(std::uniform_int_distribution<std::size_t>(1, max_chunk)(rng),
                             total - next);
      for (std::size_t k = 0; k < want; ++k) chunk[k] = sample_for<T>(next + k);
      std::size_t done = 0;
      unsigned idle_rounds = 0;
      while (done < want) {
        const std::size_t n = ring.write(chunk.data() + done, want - done);
        if (n == 0 && use_waits) {
          (void)ring.wait_for_writable(1, std::chrono::milliseconds(1));
        } else if (n == 0) {
          back_off(idle_rounds);
        } else {
          idle_rounds = 0;
        }
        done += n;
      }
      next += want;
    }
  });

  std::mt19937 rng(seed + 1);
  std::vector<T> chunk(max_chunk);
  uint64_t expected = 0;
  uint64_t bad = 0;
  unsigned idle_rounds = 0;
  while (expected < total) {
    const std::size_t want = std::uniform_int_distribution<std::size_t>(1, max_chunk)(rng);
    const std::size_t n = ring.read(chunk.data(), want);
    if (n == 0 && use_waits) {
      (void)ring.wait_for_readable(std::min(want, capacity), std::chrono::milliseconds(1));
    } else if (n == 0) {
      back_off(idle_rounds);
    } else {
      idle_rounds = 0;
    }
    for (std::size_t k = 0; k < n; ++k) bad += chunk[k] != sample_for<T>(expected + k);
    expected += n;
  }
  producer.join();
  check(expected == total, "consumer read exactly what was written");
  check(ring.readable() == 0 && ring.writable() == capacity, "ring empty at the end");
  wrong += bad;
  return wrong.load();
}

void test_single_thread_semantics() {
  anunzi::SpscRing<int16_t> ring(3);
  const int16_t in[5] = {1, 2, 3, 4, 5};
  int16_t out[5] = {};
  check(ring.write(in, 5) == 3, "write takes only what fits");
  check(ring.readable() == 3 && ring.writable() == 0, "full");
  check(ring.write(in, 1) == 0, "write to a full ring takes nothing");
  check(ring.read(out, 2) == 2 && out[0] == 1 && out[1] == 2, "read in order");
  check(ring.write(in + 3, 2) == 2, "wrap-around write");
  check(ring.read(out, 5) == 3 && out[0] == 3 && out[1] == 4 && out[2] == 5, "wrap-around read");
  check(ring.read(out, 1) == 0, "read from an empty ring gives nothing");
  check(ring.write(in, 0) == 0 && ring.read(out, 0) == 0, "zero-length calls");
  check(ring.write(in, 2) == 2 && ring.discard(5) == 2 && ring.readable() == 0, "discard");
  check(ring.total_written() == 7 && ring.total_read() == 7, "totals");
  check(!ring.wait_for_readable(1, std::chrono::milliseconds(2)), "wait times out when empty");
  check(ring.wait_for_writable(3, std::chrono::milliseconds(0)), "space is there at once");
  check(!ring.producer_waiting() && !ring.consumer_waiting(), "no one waits now");
  for (std::size_t bad : {std::size_t{0}, anunzi::SpscRing<int16_t>::kMaxCapacity + 1}) {
    bool threw = false;
    try {
      anunzi::SpscRing<int16_t> r(bad);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    check(threw, "bad capacity rejected");
  }
}

}  // namespace

int main() {
  uint64_t total = 10'000'000;
  if (const char* s = std::getenv("ANUNZI_STRESS_SAMPLES")) total = std::strtoull(s, nullptr, 10);
  test_single_thread_semantics();
  uint32_t seed = 12345;
  for (std::size_t capacity : {1, 2, 3, 509, 4096}) {
    const auto start = std::chrono::steady_clock::now();
    // uint32 carries the full count; int16 and float also run, on a tenth each.
    const uint64_t wrong32 = stress<uint32_t>(capacity, total, seed++);
    const uint64_t wrong16 = stress<int16_t>(capacity, total / 10, seed++);
    const uint64_t wrong_float = stress<float>(capacity, total / 10, seed++, true);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("capacity %4zu: %llu samples (+2 x %llu), %llu wrong, %.1f s\n", capacity,
                static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(total / 10),
                static_cast<unsigned long long>(wrong32 + wrong16 + wrong_float), seconds);
    check(wrong32 + wrong16 + wrong_float == 0, "every sample arrives in order");
  }
  const bool passed = anunzi_test::failures() == 0;
  std::printf("%s\n", passed ? "all checks passed" : "SOME CHECKS FAILED");
  return passed ? 0 : 1;
}
