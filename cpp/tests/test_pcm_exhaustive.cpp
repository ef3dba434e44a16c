// Every float32 bit pattern through every conversion path this CPU can run, against the scalar
// double-precision reference. ANUNZI_EXHAUSTIVE_STEP=k checks every k-th block of 2^16 patterns
// (sanitizer builds use it to stay fast); the default, 1, is all 2^32.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "anunzi/pcm.hpp"
#include "check.hpp"

using anunzi::Isa;
namespace pcm = anunzi::pcm;

namespace {

using anunzi_test::check;

float float_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

struct BlockResult {
  uint64_t wrong = 0;
  uint64_t wrong_clip_counts = 0;
  uint64_t checked = 0;
};

constexpr uint32_t kBlock = 1u << 16;

// Blocks [first, last) with the given step, through one path, for float32 and (widened)
// float64 input.
BlockResult run_blocks(Isa isa, uint32_t first, uint32_t last, uint32_t step, bool also_double) {
  BlockResult r;
  std::vector<float> in(kBlock);
  std::vector<double> in_double(kBlock);
  std::vector<int16_t> out(kBlock), expected(kBlock);
  for (uint32_t block = first; block < last; block += step) {
    std::size_t expected_clipped = 0;
    for (uint32_t k = 0; k < kBlock; ++k) {
      in[k] = float_from_bits(block * kBlock + k);
      expected[k] = pcm::sample_to_pcm16_reference(in[k]);
      expected_clipped += pcm::is_clipped(in[k]);
    }
    const std::size_t clipped = pcm::float_to_pcm16_isa(isa, in.data(), out.data(), kBlock, true);
    r.wrong_clip_counts += clipped != expected_clipped;
    for (uint32_t k = 0; k < kBlock; ++k) r.wrong += out[k] != expected[k];
    if (also_double) {
      for (uint32_t k = 0; k < kBlock; ++k) in_double[k] = in[k];
      const std::size_t clipped_d =
          pcm::double_to_pcm16_isa(isa, in_double.data(), out.data(), kBlock, true);
      r.wrong_clip_counts += clipped_d != expected_clipped;
      for (uint32_t k = 0; k < kBlock; ++k) r.wrong += out[k] != expected[k];
    }
    r.checked += kBlock;
  }
  return r;
}

void test_reference_values() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  check(pcm::sample_to_pcm16_reference(1.0) == 32767, "1.0 -> 32767");
  check(pcm::sample_to_pcm16_reference(-1.0) == -32768, "-1.0 -> -32768");
  check(pcm::sample_to_pcm16_reference(0.5) == 16383, "0.5 -> 16383 (16383.5 truncated)");
  check(pcm::sample_to_pcm16_reference(-0.5) == -16384, "-0.5 -> -16384");
  check(pcm::sample_to_pcm16_reference(-0.0) == 0, "-0 -> 0");
  check(pcm::sample_to_pcm16_reference(nan) == 0, "NaN -> 0");
  check(pcm::sample_to_pcm16_reference(inf) == 32767, "+Inf -> 32767");
  check(pcm::sample_to_pcm16_reference(-inf) == -32768, "-Inf -> -32768");
  check(pcm::sample_to_pcm16_reference(-1e-30) == 0, "tiny negative truncates to 0");
  check(pcm::is_clipped(inf) && pcm::is_clipped(-1.0000001) && !pcm::is_clipped(1.0) &&
            !pcm::is_clipped(nan),
        "clip classification");
}

// Why the float32 shortcut is wrong: count the inputs in [0, 1] where truncating the float32
// product differs from the browser's double product. The issue measured about 16,000.
void test_float32_shortcut_is_wrong() {
  uint64_t differing = 0;
  const uint32_t one_bits = 0x3f800000u;
  for (uint32_t bits = 0; bits <= one_bits; ++bits) {
    const float x = float_from_bits(bits);
    const float product32 = x * 32767.0f;
    differing += static_cast<int32_t>(product32) != pcm::sample_to_pcm16_reference(x);
  }
  std::printf("float32-product shortcut: %llu inputs in [0, 1] off by one LSB\n",
              static_cast<unsigned long long>(differing));
  check(differing > 10000 && differing < 30000, "float32 shortcut differs for ~16k inputs");
}

void test_pcm16_to_float_all_values(Isa isa) {
  // Every int16 value, starting at every offset 0..15 so each path's tail handling runs.
  std::vector<int16_t> in(65536);
  for (int v = 0; v < 65536; ++v) in[v] = static_cast<int16_t>(v - 32768);
  std::vector<float> out(65536);
  for (std::size_t offset = 0; offset < 16; ++offset) {
    const std::size_t n = in.size() - offset;
    pcm::pcm16_to_float_isa(isa, in.data() + offset, out.data(), n);
    uint64_t wrong = 0;
    for (std::size_t k = 0; k < n; ++k) {
      wrong += out[k] != static_cast<float>(in[offset + k]) / 32768.0f;
    }
    check(wrong == 0, "pcm16_to_float exact for every int16");
  }
}

void test_short_lengths(Isa isa) {
  // Lengths 0..70 with specials at every position: exercises the vector tails.
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), 1.0f, -1.0f, 1.0000001f,
                            -1.0000001f, std::numeric_limits<float>::infinity(), 0.5f,
                            -std::numeric_limits<float>::infinity(), 3e38f, -0.0f, 0.99999994f};
  const std::size_t num_specials = sizeof specials / sizeof specials[0];
  std::vector<float> in(80);
  std::vector<double> in_double(80);
  std::vector<int16_t> out(80 + 8);
  for (std::size_t n = 0; n <= 70; ++n) {
    std::size_t expected_clipped = 0;
    for (std::size_t k = 0; k < n; ++k) {
      in[k] = specials[(k + n) % num_specials];
      in_double[k] = in[k];
      expected_clipped += pcm::is_clipped(in[k]);
    }
    for (int pass = 0; pass < 2; ++pass) {
      std::fill(out.begin(), out.end(), int16_t{0x5555});
      const std::size_t clipped =
          pass == 0 ? pcm::float_to_pcm16_isa(isa, in.data(), out.data(), n, true)
                    : pcm::double_to_pcm16_isa(isa, in_double.data(), out.data(), n, true);
      bool ok = clipped == expected_clipped;
      for (std::size_t k = 0; k < n; ++k) ok &= out[k] == pcm::sample_to_pcm16_reference(in[k]);
      // Nothing written past the end (masked and scalar tails).
      for (std::size_t k = n; k < out.size(); ++k) ok &= out[k] == 0x5555;
      check(ok, "short lengths with special values");
    }
  }
}

}  // namespace

int main() {
  uint32_t step = 1;
  if (const char* s = std::getenv("ANUNZI_EXHAUSTIVE_STEP")) step = std::max(1, std::atoi(s));
  test_reference_values();
  test_float32_shortcut_is_wrong();

  const uint32_t num_blocks = 1u << 16;  // 2^16 blocks of 2^16 patterns = 2^32
  for (Isa isa : {Isa::kPortable, Isa::kSse2, Isa::kAvx2, Isa::kAvx512}) {
    if (!anunzi::isa_supported(isa)) {
      std::printf("%-8s not supported by this CPU: not run\n", anunzi::isa_name(isa));
      continue;
    }
    test_pcm16_to_float_all_values(isa);
    test_short_lengths(isa);
    // Two threads, one per core; float64 input is checked on every 16th block of float32
    // values widened (its kernels share the tails and masks being tested).
    BlockResult halves[2];
    std::thread worker([&] { halves[1] = run_blocks(isa, num_blocks / 2, num_blocks, step, false); });
    halves[0] = run_blocks(isa, 0, num_blocks / 2, step, false);
    worker.join();
    const BlockResult doubles = run_blocks(isa, 0, num_blocks, step * 16, true);
    const uint64_t wrong = halves[0].wrong + halves[1].wrong + doubles.wrong;
    const uint64_t wrong_counts =
        halves[0].wrong_clip_counts + halves[1].wrong_clip_counts + doubles.wrong_clip_counts;
    std::printf("%-8s %llu float32 patterns checked: %llu wrong samples, %llu wrong clip counts\n",
                anunzi::isa_name(isa),
                static_cast<unsigned long long>(halves[0].checked + halves[1].checked),
                static_cast<unsigned long long>(wrong),
                static_cast<unsigned long long>(wrong_counts));
    check(wrong == 0 && wrong_counts == 0, "exhaustive float32 -> pcm16");
  }
  const bool passed = anunzi_test::failures() == 0;
  std::printf("%s\n", passed ? "all checks passed" : "SOME CHECKS FAILED");
  return passed ? 0 : 1;
}
