#include "prototype.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "remez.hpp"

namespace anunzi::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Equiripple prototypes up to this length: the exchange costs O(taps^2) per step (about 40 ms
// for HQ's 451 taps) and, in double precision, stops converging reliably near 600 taps.
constexpr std::size_t kMaxEquirippleTaps = 560;
// Passband ripple of the equiripple designs (+-0.00087 dB), unless the stopband ripple is
// larger (QQ, LQ): then both are equal, as in a window design. Below kFlatPart of the passband
// edge the ripple is the stopband's, as flat as a window design, and never more than
// kFlatRipple: a tone there comes out as the same tone at the new rate to within the
// stopband's level or 2e-5, whichever is smaller (code written against soxr compares a
// resampled tone with the tone at the new rate; soxr's QQ is within 3e-5).
constexpr double kPassRipple = 1e-4;
constexpr double kFlatPart = 0.8;
constexpr double kFlatRipple = 2e-5;
// Kaiser's length formula is an estimate: it fell 1 dB short at 80 dB and 0.5 dB at 50 dB
// (measured on the tables built). A margin keeps the window designs at their preset.
constexpr double kKaiserMarginDb = 2.5;
// A window design's stopband falls away from its edge; an equiripple one stays at its limit
// everywhere, where float32 coefficients and arithmetic add their own error (about -135 dB).
// A few dB of margin keeps the measured rejection at the preset's figure.
constexpr double kEquirippleMarginDb = 3.0;
// Deeper stopbands (by 0.25 dB each) tried when the exchange fails at the one asked for.
constexpr int kEquirippleRetries = 4;
// The exchange loses alternation when the weights span more than this (VHQ's 175 dB against
// its 1e-4 passband ripple); such designs use the window method without trying.
constexpr double kMaxWeightRatio = 1e3;
// Table coefficients beyond which the smoothed design is not tried (about 0.6 s to compute).
constexpr double kMaxSmoothedEvaluations = 4e6;
// Points of the tabulated Kaiser kernel over its half-width; cubic interpolation between them
// errs below -180 dB of its peak.
constexpr std::size_t kTablePoints = 4096;

double bessel_i0(double x) {
  double sum = 1.0, term = 1.0;
  const double q = x * x / 4.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * k);
    sum += term;
    if (term < sum * 1e-18) break;
  }
  return sum;
}

double kaiser_beta(double attenuation_db) {
  if (attenuation_db > 50.0) return 0.1102 * (attenuation_db - 8.7);
  if (attenuation_db >= 21.0)
    return 0.5842 * std::pow(attenuation_db - 21.0, 0.4) + 0.07886 * (attenuation_db - 21.0);
  return 0.0;
}

// Kaiser's length estimate as a half-width, for a transition in cycles per input sample.
double kaiser_half_width(double attenuation_db, double transition) {
  return (attenuation_db - 7.95) / (2.285 * 2.0 * kPi * transition) / 2.0;
}

// Where a design's spectrum holds the images of the input's low frequencies: the multiples of
// the input rate (k cycles per input sample) below `reach`, for a design whose samples are
// `rate` times as dense as the input's, folded into [0, 0.5]. A tone near DC comes back there
// at the stopband's level, far above the flat part's ripple when the stopband is QQ's or LQ's:
// the designs hold the stopband there to the flat part's ripple.
std::vector<double> image_centres(double rate, double reach) {
  std::vector<double> centres;
  for (double k = 1.0; k < reach; ++k) {
    double f = k / rate;
    f -= std::floor(f);
    centres.push_back(f > 0.5 ? 1.0 - f : f);
  }
  std::sort(centres.begin(), centres.end());
  centres.erase(std::unique(centres.begin(), centres.end()), centres.end());
  return centres;
}

// The smoothed design's g depends only on the preset (its edges are fixed fractions of its own
// rate) and where images of DC fall in it, so one copy serves every ratio with the same.
std::shared_ptr<const std::vector<double>> preset_equiripple(const FilterSpec& spec,
                                                             const LowpassSpec& lowpass) {
  struct Entry {
    double passband, stopband, attenuation;
    bool flat_passband;
    std::vector<double> notches;
    std::shared_ptr<const std::vector<double>> taps;  // empty vector: the design failed
  };
  static std::mutex mutex;
  static std::vector<Entry> entries;
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const Entry& e : entries) {
      if (e.passband == spec.passband_end && e.stopband == spec.stopband_begin &&
          e.attenuation == spec.attenuation_db && e.flat_passband == spec.flat_passband &&
          e.notches == lowpass.notches) {
        return e.taps;
      }
    }
  }
  auto taps = std::make_shared<const std::vector<double>>(
      equiripple_lowpass(lowpass, kMaxEquirippleTaps));  // outside the lock: tens of ms
  std::lock_guard<std::mutex> lock(mutex);
  entries.push_back({spec.passband_end, spec.stopband_begin, spec.attenuation_db,
                     spec.flat_passband, lowpass.notches, taps});
  return taps;
}

// The attenuation a window design needs for `spec`: the preset's, with a margin for Kaiser's
// length estimate, and enough that its passband ripple stays within kFlatRipple.
double kaiser_attenuation(const FilterSpec& spec) {
  return std::max(spec.attenuation_db + kKaiserMarginDb, -20.0 * std::log10(kFlatRipple));
}

}  // namespace

Prototype::Kaiser Prototype::kaiser_design(double cutoff, double transition,
                                           double attenuation_db) {
  Kaiser k;
  k.cutoff = cutoff;
  k.half_width = kaiser_half_width(attenuation_db, transition);
  k.beta = kaiser_beta(attenuation_db);
  k.i0_beta = bessel_i0(k.beta);
  return k;
}

Prototype Prototype::halfband(const FilterSpec& spec) {
  Prototype p;
  p.kind_ = PrototypeKind::kKaiser;
  // Cutoff a quarter of the input rate: 2 cutoff sinc(2 cutoff t) = sinc(t / 2) / 2.
  p.kaiser_ = kaiser_design(0.25, 0.25 * (spec.stopband_begin - spec.passband_end),
                            kaiser_attenuation(spec));
  p.half_width_ = p.kaiser_.half_width;
  return p;
}

double Prototype::Kaiser::exact(double t) const {
  if (std::fabs(t) >= half_width) return 0.0;
  const double r = t / half_width;
  const double window = bessel_i0(beta * std::sqrt(1.0 - r * r)) / i0_beta;
  const double arg = 2.0 * cutoff * t;
  const double sinc = arg == 0.0 ? 1.0 : std::sin(kPi * arg) / (kPi * arg);
  return 2.0 * cutoff * sinc * window;
}

double Prototype::Kaiser::operator()(double t) const {
  const double a = std::fabs(t);
  if (a >= half_width) return 0.0;
  const double pos = a / step;
  const auto i = static_cast<std::size_t>(pos);
  // The window is cut off at half_width (not zero there, but table's last entry is): near the
  // ends, compute exactly.
  if (table.empty() || i < 1 || i + 3 >= table.size()) return exact(t);
  const double mu = pos - static_cast<double>(i);
  const double w0 = -mu * (mu - 1.0) * (mu - 2.0) / 6.0;
  const double w1 = (mu + 1.0) * (mu - 1.0) * (mu - 2.0) / 2.0;
  const double w2 = -(mu + 1.0) * mu * (mu - 2.0) / 2.0;
  const double w3 = (mu + 1.0) * mu * (mu - 1.0) / 6.0;
  return (w0 * table[i - 1] + w1 * table[i]) + (w2 * table[i + 1] + w3 * table[i + 2]);
}

Prototype Prototype::design(std::uint64_t up, std::uint64_t down, const FilterSpec& spec) {
  Prototype p;
  p.up_ = static_cast<double>(up);
  // nu: the lower rate in cycles per input sample; its Nyquist frequency is nu / 2.
  const double nu = std::min(1.0, static_cast<double>(up) / static_cast<double>(down));
  const double nyquist = 0.5 * nu;
  const double pe = spec.passband_end, sb = spec.stopband_begin;

  // The Kaiser design: the fallback and the yardstick. Its passband ripple is its stopband's,
  // so it is made as flat as the equiripple designs' flat part.
  p.kind_ = PrototypeKind::kKaiser;
  p.kaiser_ = kaiser_design(0.5 * (sb + pe) * nyquist, (sb - pe) * nyquist,
                            kaiser_attenuation(spec));
  p.half_width_ = p.kaiser_.half_width;

  const double stop_ripple = std::pow(10.0, -(spec.attenuation_db + kEquirippleMarginDb) / 20.0);
  const double flat_ripple = std::min(stop_ripple, kFlatRipple);
  const double pass_ripple = spec.flat_passband ? flat_ripple : std::max(stop_ripple, kPassRipple);
  if (pass_ripple / flat_ripple > kMaxWeightRatio) return p;

  // Direct equiripple at up x the input rate. (At most kMaxEquirippleTaps taps, so at most that
  // many phases: the table has exact rows.)
  const double scale = nyquist / p.up_;  // cycles per prototype sample per unit of Nyquist
  LowpassSpec direct_spec{pe * scale,  sb * scale,         pass_ripple,
                          stop_ripple, kFlatPart * pe * scale, flat_ripple};
  if (flat_ripple < stop_ripple) {
    direct_spec.notches = image_centres(p.up_, p.up_ / 2.0 + 1.0);
    direct_spec.notch_width = direct_spec.flat_edge;
    direct_spec.notch_ripple = flat_ripple;
  }
  // Only when it may be shorter than Kaiser: the exchange costs milliseconds (the loose
  // presets, whose ripples are equal, would run it for nothing).
  if (up <= kMaxEquirippleTaps && equiripple_length_estimate(direct_spec) / (2.0 * p.up_) <
                                      p.half_width_) {
    std::vector<double> direct = equiripple_lowpass(direct_spec, kMaxEquirippleTaps);
    // Near 450 taps the exchange can lose alternation at one ripple and not at one a hair
    // smaller (HQ's 2/3 stage at 135.5 dB fails, at 136 does not): retry a little deeper.
    for (int retry = 1; direct.empty() && retry <= kEquirippleRetries; ++retry) {
      LowpassSpec deeper = direct_spec;
      deeper.stop_ripple *= std::pow(10.0, -0.25 * retry / 20.0);
      deeper.flat_ripple = std::min(deeper.flat_ripple, deeper.stop_ripple);
      direct = equiripple_lowpass(deeper, kMaxEquirippleTaps);
    }
    const double half_width = (static_cast<double>(direct.size() / 2) + 0.5) / p.up_;
    if (!direct.empty() && half_width < p.half_width_) {  // (equal ripples: no shorter)
      p.kind_ = PrototypeKind::kEquiripple;
      p.half_width_ = half_width;  // taps at |t * up| <= size / 2
      p.taps_ = std::make_shared<const std::vector<double>>(std::move(direct));
      return p;
    }
  }

  // Smoothed equiripple: g at 2 nu (edges pe / 4 and sb / 4 of its rate) passes [0, pe nu / 2]
  // and rejects [sb nu / 2, nu]; its spectrum repeats every 2 nu, so above nu it comes back,
  // stopband first, with its transition band from (2 - sb / 2) nu. k keeps [0, pe nu / 2] flat
  // (ripple at the stopband's level) and rejects everything from (2 - sb / 2) nu on. Their
  // product is g's response below nu and below the stopband level above it.
  // Not for huge tables (extreme decimation, where design time dominates): each smoothed tap
  // costs a dozen kernel evaluations against the window design's one.
  const double rows = std::min(p.up_, 259.0);
  if (rows * 2.0 * p.half_width_ > kMaxSmoothedEvaluations) return p;
  // k's passband ripple is its stopband's: as flat as g's flat part. Its stopband is all that
  // removes g's images of DC (at multiples of 2 nu), several of which fold onto the output
  // band: a quarter of kFlatRipple each at least.
  const double k_attenuation = std::max(spec.attenuation_db + kEquirippleMarginDb,
                                        -20.0 * std::log10(kFlatRipple) + 12.0);
  const double k_pass = 0.5 * pe * nu, k_stop = (2.0 - 0.5 * sb) * nu;
  LowpassSpec g_spec{pe / 4, sb / 4, pass_ripple, stop_ripple, kFlatPart * pe / 4, flat_ripple};
  if (flat_ripple < stop_ripple) {  // images of DC that k does not remove
    g_spec.notches = image_centres(2.0 * nu, k_stop);
    g_spec.notch_width = g_spec.flat_edge;
    g_spec.notch_ripple = flat_ripple;
  }
  const auto g = preset_equiripple(spec, g_spec);
  if (g->empty()) return p;
  Kaiser k = kaiser_design(0.5 * (k_pass + k_stop), k_stop - k_pass, k_attenuation);
  const double spacing = 1.0 / (2.0 * nu);
  const double half_width = static_cast<double>(g->size() / 2) * spacing + k.half_width;
  if (half_width >= p.half_width_) return p;  // not shorter than Kaiser (the loose presets)
  k.step = k.half_width / static_cast<double>(kTablePoints);
  k.table.resize(kTablePoints + 1);
  for (std::size_t i = 0; i <= kTablePoints; ++i) k.table[i] = k.exact(static_cast<double>(i) * k.step);
  p.kind_ = PrototypeKind::kSmoothedEquiripple;
  p.half_width_ = half_width;
  p.kaiser_ = std::move(k);
  p.taps_ = g;
  p.spacing_ = spacing;
  return p;
}

double Prototype::operator()(double t) const {
  if (std::fabs(t) >= half_width_) return 0.0;
  switch (kind_) {
    case PrototypeKind::kKaiser:
      return kaiser_.exact(t);
    case PrototypeKind::kEquiripple: {
      // Exact rows only: t * up is an integer offset from the centre tap.
      const std::vector<double>& h = *taps_;
      const auto offset = static_cast<std::ptrdiff_t>(std::llround(t * up_));
      const auto centre = static_cast<std::ptrdiff_t>(h.size() / 2);
      const std::ptrdiff_t i = centre + offset;
      if (i < 0 || i >= static_cast<std::ptrdiff_t>(h.size())) return 0.0;
      return h[static_cast<std::size_t>(i)];
    }
    case PrototypeKind::kSmoothedEquiripple: {
      // sum_n g[n] k(t - (n - centre) spacing), over the n within k's reach of t.
      const std::vector<double>& g = *taps_;
      const double centre = static_cast<double>(g.size() / 2);
      const double lo = std::ceil(centre + (t - kaiser_.half_width) / spacing_);
      const double hi = std::floor(centre + (t + kaiser_.half_width) / spacing_);
      const auto first = static_cast<std::ptrdiff_t>(std::max(0.0, lo));
      const auto last = static_cast<std::ptrdiff_t>(
          std::min(static_cast<double>(g.size()) - 1.0, hi));
      double sum = 0.0;
      for (std::ptrdiff_t n = first; n <= last; ++n) {
        sum += g[static_cast<std::size_t>(n)] *
               kaiser_(t - (static_cast<double>(n) - centre) * spacing_);
      }
      return sum;
    }
  }
  return 0.0;
}

}  // namespace anunzi::detail
