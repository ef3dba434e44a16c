// Parks-McClellan exchange for a two-band linear-phase low-pass of odd length N = 2M + 1.
//
// The zero-phase response is A(w) = sum_{k<=M} a_k cos(k w), a polynomial of degree M in
// x = cos(w). The exchange keeps M + 2 extremal frequencies, solves for the ripple delta that
// makes the weighted error alternate on them, interpolates A through M + 1 of them in barycentric
// form (stable at these lengths, unlike solving for the a_k), and moves the set to the peaks of
// the new error until the peaks are all equal.
#include "remez.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

namespace anunzi::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kGridDensity = 16;  // grid points per extremal, as in the original program
constexpr int kMaxIterations = 60;

struct Grid {
  std::vector<double> f;        // frequency, cycles per sample
  std::vector<double> x;        // cos(2 pi f)
  std::vector<double> desired;  // 1 in the passband, 0 in the stopband
  std::vector<double> weight;
  std::size_t pass_points = 0;  // grid[0, pass_points) is the passband, the rest the stopband
};

// Weights relative to the passband's: the weighted error is the passband ripple everywhere.
// The notches are intervals of the stopband weighted notch_weight.
struct LowpassBands {
  double pass_edge, stop_edge, stop_weight, flat_edge, flat_weight;
  std::vector<std::pair<double, double>> notches;
  double notch_weight;
};

Grid make_grid(std::size_t m, const LowpassBands& b) {
  const double pass_edge = b.pass_edge, stop_edge = b.stop_edge, flat_edge = b.flat_edge;
  const double stop_weight = b.stop_weight, flat_weight = b.flat_weight;
  Grid g;
  const double step = 0.5 / (kGridDensity * static_cast<double>(m + 1));
  auto band = [&](double lo, double hi, double desired, double weight) {
    // Evenly spaced from lo to hi inclusive, no further apart than step.
    const auto n = static_cast<std::size_t>(std::ceil((hi - lo) / step)) + 1;
    for (std::size_t i = 0; i < n; ++i) {
      const double f =
          i + 1 == n ? hi : lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1);
      g.f.push_back(f);
      g.x.push_back(std::cos(2.0 * kPi * f));
      g.desired.push_back(desired);
      g.weight.push_back(weight);
    }
  };
  // The passband in two pieces that meet at flat_edge, a grid point of both, so the weight
  // steps exactly there (between grid points the error could overshoot the flat ripple).
  if (flat_edge > 0.0 && flat_edge < pass_edge) {
    band(0.0, flat_edge, 1.0, flat_weight);
    const std::size_t flat_points = g.x.size();
    band(flat_edge, pass_edge, 1.0, 1.0);
    // band() starts the second piece at flat_edge too: one point, with the stricter weight.
    g.f.erase(g.f.begin() + static_cast<std::ptrdiff_t>(flat_points));
    g.x.erase(g.x.begin() + static_cast<std::ptrdiff_t>(flat_points));
    g.desired.erase(g.desired.begin() + static_cast<std::ptrdiff_t>(flat_points));
    g.weight.erase(g.weight.begin() + static_cast<std::ptrdiff_t>(flat_points));
  } else {
    band(0.0, pass_edge, 1.0, flat_edge >= pass_edge ? flat_weight : 1.0);
  }
  g.pass_points = g.x.size();
  // The stopband in pieces that meet at the notches' edges, each edge a grid point of both
  // pieces, kept once with the stricter weight.
  std::vector<double> edges{stop_edge, 0.5};
  for (const auto& [lo, hi] : b.notches) {
    for (double e : {lo, hi}) {
      if (e > stop_edge && e < 0.5) edges.push_back(e);
    }
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  for (std::size_t i = 0; i + 1 < edges.size(); ++i) {
    const double mid = 0.5 * (edges[i] + edges[i + 1]);
    bool notched = false;
    for (const auto& [lo, hi] : b.notches) notched = notched || (mid >= lo && mid <= hi);
    const double weight = notched ? b.notch_weight : stop_weight;
    const std::size_t first = g.x.size();
    band(edges[i], edges[i + 1], 0.0, weight);
    if (i > 0) {  // the piece's first point is the previous piece's last
      g.weight[first - 1] = std::max(g.weight[first - 1], weight);
      g.f.erase(g.f.begin() + static_cast<std::ptrdiff_t>(first));
      g.x.erase(g.x.begin() + static_cast<std::ptrdiff_t>(first));
      g.desired.erase(g.desired.begin() + static_cast<std::ptrdiff_t>(first));
      g.weight.erase(g.weight.begin() + static_cast<std::ptrdiff_t>(first));
    }
  }
  return g;
}

// Barycentric weights 1 / prod_{j != i} (x_i - x_j), up to a common factor (which cancels in
// every use). Hundreds of factors would overflow or underflow a double, so each product keeps
// its binary exponent apart, renormalised every few factors.
std::vector<double> barycentric_weights(const std::vector<double>& x) {
  const std::size_t n = x.size();
  std::vector<double> mantissa(n, 1.0);
  std::vector<long> exponent(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    double p = 1.0;
    long e = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      p *= x[i] - x[j];
      if ((j & 15) == 15) {  // |p| stays within 2^-1000 .. 2^32 between renormalisations
        int k = 0;
        p = std::frexp(p, &k);
        e += k;
      }
    }
    int k = 0;
    mantissa[i] = std::frexp(p, &k);
    exponent[i] = e + k;
  }
  // w_i = 1 / (m_i 2^e_i), scaled by 2^min(e) so the largest weight is near 1.
  const long low = *std::min_element(exponent.begin(), exponent.end());
  std::vector<double> w(n);
  for (std::size_t i = 0; i < n; ++i) {
    w[i] = std::ldexp(1.0 / mantissa[i], static_cast<int>(low - exponent[i]));
  }
  return w;
}

// The polynomial through (x_i, c_i) with weights b_i, at x.
double interpolate(const std::vector<double>& xs, const std::vector<double>& c,
                   const std::vector<double>& b, double x) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double d = x - xs[i];
    if (d == 0.0) return c[i];
    const double t = b[i] / d;
    num += t * c[i];
    den += t;
  }
  return num / den;
}

struct Exchange {
  std::vector<double> h;
  std::vector<double> extremal_frequencies;  // to start the exchange at a nearby length
  double max_error = 0.0;  // peak weighted error on the grid: the passband ripple
  bool converged = false;
};

// Grid indices for the r extremals: the previous length's extremal frequencies when given
// (converges in a few steps instead of fifteen), else spread evenly over the grid.
std::vector<std::size_t> initial_extremals(const Grid& g, std::size_t r,
                                           const std::vector<double>& start) {
  const std::size_t n_grid = g.f.size();
  std::vector<std::size_t> ext;
  for (double f : start) {
    const auto it = std::lower_bound(g.f.begin(), g.f.end(), f);
    std::size_t j = static_cast<std::size_t>(it - g.f.begin());
    if (j == n_grid || (j > 0 && f - g.f[j - 1] < g.f[j] - f)) --j;
    if (ext.empty() || j > ext.back()) ext.push_back(j);
  }
  if (ext.size() < 2) ext.clear();
  while (!ext.empty() && ext.size() < r) {  // split the widest gap
    std::size_t widest = 0;
    for (std::size_t i = 1; i + 1 < ext.size(); ++i) {
      if (ext[i + 1] - ext[i] > ext[widest + 1] - ext[widest]) widest = i;
    }
    if (ext[widest + 1] - ext[widest] < 2) break;
    ext.insert(ext.begin() + static_cast<std::ptrdiff_t>(widest) + 1,
               (ext[widest] + ext[widest + 1]) / 2);
  }
  while (ext.size() > r) {  // merge the narrowest gap
    std::size_t narrowest = 0;
    for (std::size_t i = 1; i + 1 < ext.size(); ++i) {
      if (ext[i + 1] - ext[i] < ext[narrowest + 1] - ext[narrowest]) narrowest = i;
    }
    ext.erase(ext.begin() + static_cast<std::ptrdiff_t>(narrowest) + 1);
  }
  if (ext.size() != r) {
    ext.resize(r);
    for (std::size_t i = 0; i < r; ++i) ext[i] = i * (n_grid - 1) / (r - 1);
  }
  return ext;
}

Exchange remez(std::size_t taps, const LowpassBands& b, const std::vector<double>& start) {
  Exchange result;
  const std::size_t m = (taps - 1) / 2;
  const std::size_t r = m + 2;
  const Grid g = make_grid(m, b);
  const std::size_t n_grid = g.x.size();
  if (n_grid < 2 * r) return result;
  std::vector<std::size_t> ext = initial_extremals(g, r, start);

  std::vector<double> xs(r), error(n_grid), xi(r - 1), ci(r - 1), bi(r - 1);
  std::vector<double> num_grid(n_grid), den_grid(n_grid);
  for (int iteration = 0; iteration < kMaxIterations; ++iteration) {
    for (std::size_t i = 0; i < r; ++i) xs[i] = g.x[ext[i]];
    const std::vector<double> b = barycentric_weights(xs);
    double num = 0.0, den = 0.0;
    for (std::size_t i = 0; i < r; ++i) {
      const double s = (i % 2 == 0) ? 1.0 : -1.0;
      num += b[i] * g.desired[ext[i]];
      den += s * b[i] / g.weight[ext[i]];
    }
    const double delta = num / den;
    for (std::size_t i = 0; i + 1 < r; ++i) {
      const double s = (i % 2 == 0) ? 1.0 : -1.0;
      xi[i] = xs[i];
      ci[i] = g.desired[ext[i]] - s * delta / g.weight[ext[i]];
      bi[i] = b[i] * (xs[i] - xs[r - 1]);  // drops the last point's factor
    }
    // The response on the whole grid. Interpolation points first, then the rest point by point
    // in one pass per interpolation point, a loop the compiler vectorises (this is most of the
    // design time).
    std::fill(num_grid.begin(), num_grid.end(), 0.0);
    std::fill(den_grid.begin(), den_grid.end(), 0.0);
    for (std::size_t i = 0; i + 1 < r; ++i) {
      const double x0 = xi[i], b0 = bi[i], c0 = ci[i];
      double* num_p = num_grid.data();
      double* den_p = den_grid.data();
      const double* x_p = g.x.data();
      for (std::size_t j = 0; j < n_grid; ++j) {
        const double t = b0 / (x_p[j] - x0);  // inf at x0's own point, overwritten below
        num_p[j] += t * c0;
        den_p[j] += t;
      }
    }
    for (std::size_t j = 0; j < n_grid; ++j) {
      error[j] = g.weight[j] * (g.desired[j] - num_grid[j] / den_grid[j]);
    }
    for (std::size_t i = 0; i + 1 < r; ++i) {
      const std::size_t j = ext[i];
      error[j] = g.weight[j] * (g.desired[j] - ci[i]);
    }

    // Peaks of the error within each band (band edges count), alternating in sign.
    std::vector<std::size_t> peaks;
    auto scan = [&](std::size_t lo, std::size_t hi) {  // [lo, hi)
      for (std::size_t j = lo; j < hi; ++j) {
        const double e = error[j];
        const double prev = j > lo ? error[j - 1] : (e > 0 ? -HUGE_VAL : HUGE_VAL);
        const double next = j + 1 < hi ? error[j + 1] : (e > 0 ? -HUGE_VAL : HUGE_VAL);
        const bool peak = e > 0 ? (e >= prev && e > next) : (e <= prev && e < next);
        if (peak) peaks.push_back(j);
      }
    };
    scan(0, g.pass_points);
    scan(g.pass_points, n_grid);
    std::vector<std::size_t> alternating;
    for (std::size_t j : peaks) {
      if (!alternating.empty() && (error[j] > 0) == (error[alternating.back()] > 0)) {
        if (std::fabs(error[j]) > std::fabs(error[alternating.back()])) alternating.back() = j;
      } else {
        alternating.push_back(j);
      }
    }
    while (alternating.size() > r) {  // drop the smaller end: alternation is kept
      if (std::fabs(error[alternating.front()]) < std::fabs(error[alternating.back()])) {
        alternating.erase(alternating.begin());
      } else {
        alternating.pop_back();
      }
    }
    if (alternating.size() < r) return result;  // lost alternation: give up, window design
    double peak = 0.0;
    for (std::size_t j : alternating) peak = std::max(peak, std::fabs(error[j]));
    const bool same = alternating == ext;
    ext = alternating;
    if (same || (peak - std::fabs(delta)) <= 1e-7 * peak) {
      result.converged = true;
      for (std::size_t j : ext) result.extremal_frequencies.push_back(g.f[j]);
      for (double e : error) result.max_error = std::max(result.max_error, std::fabs(e));
      // Impulse response by sampling A at N equally spaced frequencies.
      std::vector<double> a(m + 1);
      for (std::size_t k = 0; k <= m; ++k) {
        a[k] = interpolate(xi, ci, bi, std::cos(2.0 * kPi * static_cast<double>(k) /
                                                static_cast<double>(taps)));
      }
      result.h.assign(taps, 0.0);
      for (std::size_t n = 0; n <= m; ++n) {
        double sum = a[0];
        for (std::size_t k = 1; k <= m; ++k) {
          sum += 2.0 * a[k] *
                 std::cos(2.0 * kPi * static_cast<double>(k * n % taps) /
                          static_cast<double>(taps));
        }
        result.h[m + n] = result.h[m - n] = sum / static_cast<double>(taps);
      }
      return result;
    }
  }
  return result;
}

// Herrmann, Rabiner and Chan's length estimate for an equiripple low-pass.
double estimated_taps(double pass_ripple, double stop_ripple, double width) {
  const double dp = std::log10(pass_ripple), ds = std::log10(stop_ripple);
  const double d = (5.309e-3 * dp * dp + 7.114e-2 * dp - 4.761e-1) * ds +
                   (-2.66e-3 * dp * dp - 5.941e-1 * dp - 4.278e-1);
  const double f = 11.01217 + 0.51244 * (dp - ds);
  return d / width - f * width + 1.0;
}

}  // namespace

double equiripple_length_estimate(const LowpassSpec& spec) {
  // Either constraint may set the length: the ripple at the passband edge, or the flat part
  // (whose transition to the stopband is wider but whose ripple is smaller).
  return std::max(
      estimated_taps(spec.pass_ripple, spec.stop_ripple, spec.stop_edge - spec.pass_edge),
      spec.flat_edge > 0.0
          ? estimated_taps(spec.flat_ripple, spec.stop_ripple, spec.stop_edge - spec.flat_edge)
          : 0.0);
}

std::vector<double> equiripple_lowpass(const LowpassSpec& spec, std::size_t max_taps) {
  if (!(spec.pass_edge > 0.0 && spec.stop_edge > spec.pass_edge && spec.stop_edge < 0.49 &&
        spec.flat_edge >= 0.0 && spec.flat_edge <= spec.pass_edge) ||
      !(spec.pass_ripple > 0.0 && spec.stop_ripple > 0.0 && spec.flat_ripple > 0.0 &&
        spec.flat_ripple <= spec.pass_ripple)) {
    return {};
  }
  const double estimate = equiripple_length_estimate(spec);
  if (!(estimate < static_cast<double>(max_taps))) return {};
  // The exchange equalises the peaks on a grid; between grid points the error can rise a
  // little above them, so aim at 90 % of each ripple.
  const double pass_ripple = 0.9 * spec.pass_ripple;
  LowpassBands bands{spec.pass_edge,
                     spec.stop_edge,
                     spec.pass_ripple / spec.stop_ripple,
                     spec.flat_edge,
                     spec.pass_ripple / spec.flat_ripple,
                     {},
                     spec.pass_ripple / spec.notch_ripple};
  if (spec.notch_ripple < spec.stop_ripple) {
    for (double c : spec.notches) {
      bands.notches.emplace_back(c - spec.notch_width, c + spec.notch_width);
    }
  }
  auto odd = [](double v) { return static_cast<std::size_t>(std::max(3.0, v)) / 2 * 2 + 1; };
  auto meets = [&](const Exchange& e) { return e.converged && e.max_error <= pass_ripple; };
  // Search for the shortest length meeting the ripple: the ripple falls roughly exponentially
  // with the length, so extrapolate upwards from the last two designs, then bisect. Each
  // design starts from the extremal frequencies of the nearest converged one.
  std::size_t taps = odd(estimate), fail = 0, pass = 0;
  Exchange passed;
  std::vector<double> warm;
  std::size_t prev_taps = 0;
  double prev_error = 0.0;
  int lost = 0;  // exchanges that lost alternation: extreme weights defeat it, so stop early
  for (int run = 0; run < 40 && taps <= max_taps && lost < 3; ++run) {
    Exchange e = remez(taps, bands, warm);
    if (e.converged) warm = e.extremal_frequencies;
    if (!e.converged) ++lost;
    if (meets(e)) {
      pass = taps;
      passed = std::move(e);
    } else {
      fail = taps;
    }
    if (pass != 0 && (pass <= 3 || (fail != 0 && pass - fail <= 2))) break;
    if (pass == 0) {  // still too short
      std::size_t step = std::max<std::size_t>(2, taps / 64);
      if (e.converged && prev_error > 0.0 && e.max_error < prev_error) {
        const double per_tap = (std::log(prev_error) - std::log(e.max_error)) /
                               static_cast<double>(taps - prev_taps);
        const double need = (std::log(e.max_error) - std::log(pass_ripple)) / per_tap;
        step = static_cast<std::size_t>(std::clamp(std::ceil(need), 2.0, 64.0));
      }
      if (e.converged) {
        prev_taps = taps;
        prev_error = e.max_error;
      }
      taps = odd(static_cast<double>(taps + step));
    } else if (fail == 0) {  // the first length met it: try shorter
      taps -= 2;
    } else {
      taps = odd(static_cast<double>(fail + pass) / 2.0);
      if (taps <= fail) taps = fail + 2;
      if (taps >= pass) break;
    }
  }
  if (pass != 0) return passed.h;
  return {};
}

}  // namespace anunzi::detail
