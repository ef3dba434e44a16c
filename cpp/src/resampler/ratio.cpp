#include "ratio.hpp"

#include <cmath>
#include <stdexcept>

namespace anunzi::detail {
namespace {

std::uint64_t gcd_u64(std::uint64_t a, std::uint64_t b) {
  while (b != 0) {
    const std::uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Best rational approximation num/den of `ratio` with both terms <= kMaxStep.
RateRatio approximate_ratio(double ratio) {
  std::uint64_t p0 = 0, q0 = 1, p1 = 1, q1 = 0;
  double x = ratio;
  for (int iter = 0; iter < 64; ++iter) {
    const double a_f = std::floor(x);
    if (a_f > static_cast<double>(kMaxStep)) break;
    const auto a = static_cast<std::uint64_t>(a_f);
    const std::uint64_t p2 = a * p1 + p0, q2 = a * q1 + q0;
    if (p2 > kMaxStep || q2 > kMaxStep) break;
    p0 = p1;
    q0 = q1;
    p1 = p2;
    q1 = q2;
    const double frac = x - a_f;
    if (frac < 1e-12) break;
    x = 1.0 / frac;
  }
  if (q1 == 0 || p1 == 0) throw std::invalid_argument("sample rate ratio is out of range");
  return {p1, q1};
}

}  // namespace

RateRatio rate_ratio(double in_rate, double out_rate) {
  const bool integral = in_rate == std::floor(in_rate) && out_rate == std::floor(out_rate) &&
                        in_rate < 9.0e15 && out_rate < 9.0e15;
  if (integral) {
    const auto in_i = static_cast<std::uint64_t>(in_rate);
    const auto out_i = static_cast<std::uint64_t>(out_rate);
    const std::uint64_t g = gcd_u64(in_i, out_i);
    if (out_i / g <= kMaxStep && in_i / g <= kMaxStep) return {out_i / g, in_i / g};
  }
  return approximate_ratio(out_rate / in_rate);
}

}  // namespace anunzi::detail
