#pragma once
// Internal to the resampler: the exact rational ratio a stream runs at.
#include <cstdint>

namespace anunzi::detail {

// Ratios are kept as exact fractions of integers up to this size; beyond it (non-integer or
// huge co-prime rates) the ratio is approximated by a continued fraction, an error far below
// any clock's accuracy.
constexpr std::uint64_t kMaxStep = 1u << 20;

// out_rate / in_rate = up / down, reduced: up output samples for every down input samples.
struct RateRatio {
  std::uint64_t up;
  std::uint64_t down;
};

// The exact ratio when both terms fit in kMaxStep, else the best approximation that does.
// Throws std::invalid_argument when none does (a ratio of 2^20 + 1 or more either way).
[[nodiscard]] RateRatio rate_ratio(double in_rate, double out_rate);

}  // namespace anunzi::detail
