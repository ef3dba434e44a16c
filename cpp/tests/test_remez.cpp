// ctest for the equiripple design: every returned filter is checked against its specification
// on a grid ten times denser than the exchange's own, and degenerate requests return nothing.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "check.hpp"
#include "remez.hpp"

namespace {

using anunzi::detail::equiripple_lowpass;
using anunzi::detail::LowpassSpec;

constexpr double kPi = 3.14159265358979323846;

// Zero-phase response of a symmetric odd-length filter at f cycles per sample.
double response(const std::vector<double>& h, double f) {
  const std::size_t m = h.size() / 2;
  double a = h[m];
  for (std::size_t k = 1; k <= m; ++k) a += 2.0 * h[m + k] * std::cos(2.0 * kPi * f * k);
  return a;
}

void check_meets(const LowpassSpec& s, std::size_t max_taps, const char* name) {
  const std::vector<double> h = equiripple_lowpass(s, max_taps);
  CHECK(!h.empty());
  if (h.empty()) return;
  CHECK(h.size() % 2 == 1 && h.size() <= max_taps);
  for (std::size_t i = 0; i < h.size(); ++i) CHECK(h[i] == h[h.size() - 1 - i]);
  double pass = 0.0, flat = 0.0, stop = 0.0, notch = 0.0;
  const int points = 20000;
  for (int i = 0; i <= points; ++i) {
    const double f = 0.5 * i / points;
    const double a = response(h, f);
    if (f <= s.pass_edge) pass = std::max(pass, std::fabs(a - 1.0));
    if (f <= s.flat_edge) flat = std::max(flat, std::fabs(a - 1.0));
    if (f >= s.stop_edge) stop = std::max(stop, std::fabs(a));
    for (double c : s.notches) {
      if (f >= s.stop_edge && std::fabs(f - c) <= s.notch_width) {
        notch = std::max(notch, std::fabs(a));
      }
    }
  }
  std::printf("%s: %zu taps, passband %.2e, flat part %.2e, stopband %.1f dB", name, h.size(),
              pass, flat, 20.0 * std::log10(stop));
  if (!s.notches.empty()) std::printf(", notches %.1f dB", 20.0 * std::log10(notch));
  std::printf("\n");
  CHECK(pass <= s.pass_ripple);
  CHECK(flat <= s.flat_ripple);
  CHECK(stop <= s.stop_ripple);
  CHECK(notch <= std::min(s.notch_ripple, s.stop_ripple));
}

}  // namespace

int main() {
  const double hq = std::pow(10.0, -133.0 / 20.0);
  // HQ at 48 kHz <-> 16 kHz: 0.91 and 1.0 of the 8 kHz Nyquist at a 48 kHz prototype rate.
  check_meets({7280.0 / 48000, 8000.0 / 48000, 1e-4, hq, 0.8 * 7280.0 / 48000, hq}, 560, "HQ 3x");
  // HQ at 8 kHz -> 16 kHz, and a plain design without a flat part (MQ-like).
  check_meets({0.2275, 0.25, 1e-4, hq, 0.182, hq}, 560, "HQ 2x");
  const double mq = std::pow(10.0, -108.0 / 20.0);
  check_meets({0.15, 0.1833, 1e-4, mq, 0.0, 1e-4}, 560, "MQ 3x");
  // Equal ripples (QQ): a short filter.
  check_meets({0.1333, 0.2, 3e-3, 3e-3, 0.0, 3e-3}, 560, "QQ 3x");
  // QQ at 16 kHz -> 48 kHz as designed now: flat to 2e-5 below 0.8 of the passband edge, and
  // the stopband as low where the images of that flat part fall (1/3 of the prototype rate).
  const double qq = std::pow(10.0, -53.0 / 20.0);
  LowpassSpec notched{0.8 / 6, 1.2 / 6, qq, qq, 0.64 / 6, 2e-5};
  notched.notches = {1.0 / 3};
  notched.notch_width = notched.flat_edge;
  notched.notch_ripple = 2e-5;
  check_meets(notched, 560, "QQ 3x notched");

  // Degenerate or out-of-range requests: nothing, so the caller uses its window design.
  CHECK(equiripple_lowpass({0.2, 0.5, 1e-4, 1e-6, 0.1, 1e-6}, 560).empty());   // no stopband
  CHECK(equiripple_lowpass({0.3, 0.2, 1e-4, 1e-6, 0.1, 1e-6}, 560).empty());   // edges crossed
  CHECK(equiripple_lowpass({0.0, 0.2, 1e-4, 1e-6, 0.0, 1e-6}, 560).empty());   // no passband
  CHECK(equiripple_lowpass({0.1, 0.2, 0.0, 1e-6, 0.05, 1e-6}, 560).empty());   // no ripple
  CHECK(equiripple_lowpass({0.1, 0.2, 1e-4, 1e-6, 0.15, 1e-6}, 560).empty());  // flat > pass
  CHECK(equiripple_lowpass({0.1, 0.2, 1e-6, 1e-6, 0.05, 1e-4}, 560).empty());  // flat rougher
  // Too long for the limit: refused at the estimate, without running the exchange.
  CHECK(equiripple_lowpass({7280.0 / 48000, 8000.0 / 48000, 1e-4, hq, 0.0, 1e-4}, 200).empty());
  // NaN edges are refused, not looped on.
  CHECK(equiripple_lowpass({std::nan(""), 0.2, 1e-4, 1e-6, 0.0, 1e-4}, 560).empty());

  if (anunzi_test::failures() != 0) {
    std::fprintf(stderr, "test_remez: %d check(s) failed\n", anunzi_test::failures());
    return 1;
  }
  std::printf("test_remez: all checks passed\n");
  return 0;
}
