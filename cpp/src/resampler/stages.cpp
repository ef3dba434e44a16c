#include "stages.hpp"

#include <algorithm>
#include <cmath>

#include "design.hpp"

namespace anunzi::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Another stage has its own history, a pass over its input and bookkeeping: this share of
// the plan's cost per stage beyond the first.
constexpr double kMinSaving = 0.1;
// Half-band stages in a row at most (48 -> 6 kHz takes three).
constexpr int kMaxHalfbands = 3;
// What the dominant stage of a cascade rejects beyond the preset: with the others' residues at
// a quarter of the preset's, amplitudes adding in phase stay within it.
constexpr double kDominantMarginDb = 2.5;

std::uint64_t gcd_u64(std::uint64_t a, std::uint64_t b) {
  while (b != 0) {
    const std::uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

StageSpec make_stage(std::uint64_t up, std::uint64_t down, const FilterSpec& spec, bool halfband) {
  const std::uint64_t g = gcd_u64(up, down);
  StageSpec s;
  s.up = up / g;
  s.down = down / g;
  s.spec = spec;
  s.halfband = halfband;
  return s;
}

// How fast a stage's kernel runs, relative to the correlate kernel on long runs of taps (96 G
// multiply-adds/s one-shot on AVX-512 float32), as measured: correlate falls with the runs'
// length (taps whose windows lie a 16-sample vector apart: a half-band's runs are of one or
// two taps, 3/2 with 18 taps one), lanes multiplies its blocks' shifted zeros too, and
// interpolated rows are dot products one output at a time.
double relative_speed(const StageSpec& stage, double taps) {
  constexpr double kLanes = 16.0;
  const double up = static_cast<double>(stage.up), down = static_cast<double>(stage.down);
  if (stage.up > kMaxExactPhases) return 0.2;
  if (stage.up > kFewPhases) return 0.6 * taps / (taps + kLanes * down / up);
  const double run = (stage.halfband ? 2.0 * taps : taps) / (kLanes * down);
  return run >= 8.0 ? 1.0 : run >= 4.0 ? 0.78 : run >= 2.0 ? 0.5 : 0.3;
}

// Estimated cost per final output, in multiply-adds at the correlate kernel's best speed:
// each stage's taps over its relative speed, times its outputs per final output; each stage
// beyond the first adds kMinSaving (its own pass over its input and bookkeeping).
double plan_cost(const std::vector<StageSpec>& plan) {
  std::vector<double> out_rate;  // relative to the cascade's input rate
  double rate = 1.0;
  for (const StageSpec& s : plan) {
    rate *= static_cast<double>(s.up) / static_cast<double>(s.down);
    out_rate.push_back(rate);
  }
  double cost = 0.0;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    const double taps = estimated_taps(plan[i]);
    cost += taps / relative_speed(plan[i], taps) * out_rate[i] / rate;
  }
  return cost * (1.0 + kMinSaving * static_cast<double>(plan.size() - 1));
}

// Half-bands from the input rate down while the band the last stage passes stays below a
// quarter of the current rate, then the preset's filter from there. Each half-band keeps that
// band (up to the preset's stopband edge) free of aliases; what folds above it, the last stage
// removes.
std::vector<StageSpec> decimating_plan(std::uint64_t up, std::uint64_t down,
                                       const FilterSpec& preset, int halfbands) {
  std::vector<StageSpec> plan;
  const double ratio = static_cast<double>(up) / static_cast<double>(down);
  for (int i = 0; i < halfbands; ++i) {
    // The half-band's lower rate is 2^-(i+1) of the input rate: the last stage's stopband
    // edge (stopband_begin * ratio / 2) relative to that rate's Nyquist.
    const double pass = preset.stopband_begin * ratio * std::ldexp(1.0, i + 1);
    FilterSpec spec = preset;
    spec.passband_end = pass;
    spec.stopband_begin = 2.0 - pass;
    plan.push_back(make_stage(1, 2, spec, true));
  }
  plan.push_back(make_stage(up << halfbands, down, preset, false));
  return plan;
}

// The preset's filter doubles the rate, then a wide stage: the first stage's output has no
// content above stopband_begin of the input Nyquist, so its images begin at
// 2 - stopband_begin / 2 of the doubled rate's Nyquist (the input rate).
std::vector<StageSpec> interpolating_plan(std::uint64_t up, std::uint64_t down,
                                          const FilterSpec& preset) {
  std::vector<StageSpec> plan{make_stage(2, 1, preset, false)};
  FilterSpec wide = preset;
  wide.passband_end = preset.passband_end / 2.0;
  wide.stopband_begin = 2.0 - preset.stopband_begin / 2.0;
  wide.flat_passband = true;  // its ripple adds to the first stage's
  const StageSpec second = make_stage(up, 2 * down, wide, false);
  if (second.up != second.down) plan.push_back(second);
  return plan;
}

}  // namespace

double estimated_taps(const StageSpec& stage) {
  const double nu = std::min(1.0, static_cast<double>(stage.up) / static_cast<double>(stage.down));
  const double transition =
      (stage.spec.stopband_begin - stage.spec.passband_end) * 0.5 * nu;  // cycles per input
  const double length =
      (stage.spec.attenuation_db + 2.5 - 7.95) / (2.285 * 2.0 * kPi * transition) + 1.0;
  return stage.halfband ? length / 2.0 + 1.0 : length;
}

std::vector<std::vector<StageSpec>> plan_candidates(std::uint64_t up, std::uint64_t down,
                                                     const FilterSpec& preset) {
  const std::vector<StageSpec> single{make_stage(up, down, preset, false)};
  const double ratio = static_cast<double>(up) / static_cast<double>(down);
  if (ratio > kMaxCascadeRatio || ratio < 1.0 / kMaxCascadeRatio || preset.double_precision) {
    return {single};
  }
  std::vector<std::vector<StageSpec>> plans;
  for (int h = 1; h <= kMaxHalfbands && preset.stopband_begin * ratio < std::ldexp(1.0, -h);
       ++h) {
    plans.push_back(decimating_plan(up, down, preset, h));
  }
  if (ratio >= 2.0) plans.push_back(interpolating_plan(up, down, preset));
  for (auto& plan : plans) {
    // Each stage leaves its own residue of aliases and images, and at some output frequencies
    // those of every stage land together, in phase. The cheap stages reject 12 dB more than
    // the preset (and as much more again as there are of them), so that together they leave a
    // quarter of its residue; the dominant stage, whose length matters, only 2.5 dB more.
    std::size_t dominant = 0;
    double most = 0.0, rate = 1.0, final_rate = 1.0;
    for (const StageSpec& s : plan) {
      final_rate *= static_cast<double>(s.up) / static_cast<double>(s.down);
    }
    for (std::size_t i = 0; i < plan.size(); ++i) {
      rate *= static_cast<double>(plan[i].up) / static_cast<double>(plan[i].down);
      const double cost = estimated_taps(plan[i]) * rate / final_rate;
      if (cost > most) {
        most = cost;
        dominant = i;
      }
    }
    const double others_db = 12.0 + 20.0 * std::log10(static_cast<double>(plan.size() - 1));
    for (std::size_t i = 0; i < plan.size(); ++i) {
      plan[i].spec.attenuation_db += i == dominant ? kDominantMarginDb : others_db;
    }
  }
  // Cheapest first, and only those cheaper than the single stage. Measured one-shot on
  // AVX-512, what the model decides: 48 -> 16 kHz in one stage (447 multiply-adds per output)
  // at 648 Ms/s, as a cascade (270) at 541-605; 16 -> 48 kHz in one stage (149) at 194, as a
  // cascade (119) at 167-186; 16 -> 44.1 kHz in one stage of 441 phases (158) at 90, as a
  // cascade (129) at 135-153.
  std::stable_sort(plans.begin(), plans.end(),
                   [](const auto& a, const auto& b) { return plan_cost(a) < plan_cost(b); });
  const double single_cost = plan_cost(single);
  plans.erase(std::remove_if(plans.begin(), plans.end(),
                             [&](const auto& plan) { return plan_cost(plan) >= single_cost; }),
              plans.end());
  plans.push_back(single);
  return plans;
}

}  // namespace anunzi::detail
