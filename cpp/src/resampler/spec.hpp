#pragma once
// Internal to the resampler: what each quality preset asks of its filter.
#include <stdexcept>

#include "anunzi/resampler.hpp"

namespace anunzi::detail {

// Frequencies relative to the Nyquist frequency of the lower of the two rates. A stopband edge
// above 1.0 lets components between Nyquist and the edge alias, but only into the transition
// band above the passband (the edge never exceeds 2 - passband).
struct FilterSpec {
  double passband_end;
  double stopband_begin;
  double attenuation_db;
  bool double_precision;  // accumulate in double: float32 rounding would dominate the error
  // The whole passband as flat as the stopband's ripple (else only its lower part, see
  // prototype.cpp): for a cascade's wide stage, whose ripple would add to the sharp stage's.
  bool flat_passband = false;
};

[[nodiscard]] inline FilterSpec filter_spec(Quality quality) {
  switch (quality) {
    case Quality::kQuick:
      return {0.80, 1.20, 50.0, false};
    case Quality::kLow:
      return {0.85, 1.15, 80.0, false};
    case Quality::kMedium:
      return {0.90, 1.10, 105.0, false};
    case Quality::kHigh:
      return {0.91, 1.00, 130.0, false};
    case Quality::kVeryHigh:
      return {0.91, 1.00, 175.0, true};
  }
  throw std::invalid_argument("Quality must be one of [QQ, LQ, MQ, HQ, VHQ]");
}

}  // namespace anunzi::detail
