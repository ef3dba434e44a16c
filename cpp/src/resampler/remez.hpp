#pragma once
// Internal to the resampler: equiripple (Parks-McClellan) low-pass design.
//
// A Kaiser window gives the passband the same ripple as the stopband (1e-6.5 at 130 dB), far
// flatter than anyone can hear; an equiripple design spends that surplus on a shorter filter
// (about a quarter fewer taps at HQ), which is both faster and lower in latency.
#include <cstddef>
#include <vector>

namespace anunzi::detail {

// Frequencies in cycles per sample, ripples as linear amplitudes. The passband [0, pass_edge]
// stays within 1 +- pass_ripple, and its lower part [0, flat_edge] within 1 +- flat_ripple;
// the stopband [stop_edge, 0.5] stays below stop_ripple, and below notch_ripple within
// notch_width of each of `notches` (where a resampler's images of the flat part fall).
struct LowpassSpec {
  double pass_edge, stop_edge, pass_ripple, stop_ripple, flat_edge, flat_ripple;
  std::vector<double> notches{};
  double notch_width = 0.0, notch_ripple = 1.0;
};

// The shortest odd-length linear-phase low-pass meeting `spec`: its symmetric impulse response,
// or an empty vector when the bands are degenerate, the estimated length exceeds max_taps, or
// the exchange does not converge (callers fall back to a window design).
[[nodiscard]] std::vector<double> equiripple_lowpass(const LowpassSpec& spec,
                                                     std::size_t max_taps);

// The length equiripple_lowpass starts its search from (Herrmann, Rabiner and Chan's
// estimate, or the flat part's if longer): a cheap way to tell whether it can beat a design
// of known length before running the exchange.
[[nodiscard]] double equiripple_length_estimate(const LowpassSpec& spec);

}  // namespace anunzi::detail
