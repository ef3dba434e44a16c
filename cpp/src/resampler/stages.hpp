#pragma once
// Internal to the resampler: which cascade of filters converts a ratio at a preset.
//
// A direct filter's multiply-adds per output grow with the rate it reads its input at, and the
// sharp transition of a preset (HQ: from 0.91 to 1.00 of the lower Nyquist) is what makes it
// long. So the sharp filter runs at the lowest rate the ratio allows, and cheap filters with
// wide transitions do the rest:
// * down by more than 2: half-band stages first (every other tap zero; at 48 -> 24 kHz the
//   band from 8 to 16 kHz is theirs to fall in), then the sharp stage from the halved rate;
// * up by 2 or more: the sharp stage doubles the input rate, then a wide stage (its images
//   start 1.5 input Nyquists up at HQ) goes the rest of the way.
// Each stage is a direct filter with sample-by-sample release, so a cascade keeps bit-exact
// chunking and a latency that is the sum of its stages' (a half-band or a wide stage adds a
// fraction of a millisecond). The plan with the fewest estimated multiply-adds per output
// wins, unless its latency would exceed kCascadeLatencyBudget and the single stage's.
#include <cstdint>
#include <vector>

#include "spec.hpp"

namespace anunzi::detail {

// Stages of at most this many phases compute each phase's outputs as vectors (the correlate
// kernel, stage.hpp); beyond, vectors of consecutive outputs of as many phases.
constexpr std::uint64_t kFewPhases = 16;

// Ratios beyond this either way keep a single stage: their designs (table sizes, the design
// cache's limits) are what the documentation describes for extreme ratios.
constexpr double kMaxCascadeRatio = 16.0;

// One stage: output / input = up / down (reduced), a filter meeting `spec` (relative to the
// Nyquist frequency of the stage's lower rate); a half-band is a Kaiser design with its
// cutoff at a quarter of its input rate, so that every other tap is exactly zero.
struct StageSpec {
  std::uint64_t up = 1, down = 1;
  FilterSpec spec{};
  bool halfband = false;
};

// A cascade may make a stream's latency this long (seconds), or as long as the single stage's
// where that is longer: HQ's bound at 16 kHz and above. (At 8 kHz -> 48 kHz the single stage
// takes 9.9 ms, its cascade 10.1.)
constexpr double kCascadeLatencyBudget = 0.006;

// The plans that convert up / down at `preset`, each its stages first to last: the cheapest
// first, the single stage last (the only one for VHQ, whose 175 dB half-band at 48 -> 16 kHz
// would add 0.75 ms, and for ratios beyond kMaxCascadeRatio).
[[nodiscard]] std::vector<std::vector<StageSpec>> plan_candidates(std::uint64_t up,
                                                                  std::uint64_t down,
                                                                  const FilterSpec& preset);

// Multiply-adds per output of one stage's filter, estimated from Kaiser's length formula (a
// yardstick to compare plans by, not a design).
[[nodiscard]] double estimated_taps(const StageSpec& stage);

}  // namespace anunzi::detail
