#pragma once
// Internal to the resampler: the low-pass prototype whose samples fill the polyphase table.
//
// Three designs, the shortest that meets the preset wins (shorter is faster and lower in
// latency):
// * direct equiripple: a Parks-McClellan filter at up x the input rate, when that is short
//   enough to design (HQ at 48 <-> 16 kHz: 451 taps against Kaiser's 567);
// * smoothed equiripple: a Parks-McClellan filter g at twice the lower rate, made continuous by
//   a short Kaiser low-pass k that removes g's spectral images; any ratio, about a fifth
//   shorter than Kaiser at HQ (44.1 <-> 48 kHz: 158 input samples against 189);
// * Kaiser-windowed sinc: VHQ (whose weights defeat the exchange) and the loose presets.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "spec.hpp"

namespace anunzi::detail {

enum class PrototypeKind { kKaiser, kEquiripple, kSmoothedEquiripple };

class Prototype {
 public:
  // For a stream of ratio up / down (output / input rate) and a preset.
  static Prototype design(std::uint64_t up, std::uint64_t down, const FilterSpec& spec);
  // A half-band low-pass for a 2:1 decimation: a Kaiser-windowed sinc with its cutoff at a
  // quarter of the input rate (spec's passband and stopband edges are symmetric about it),
  // so h(t) is zero at every even t but 0.
  static Prototype halfband(const FilterSpec& spec);

  // h(t) is zero for |t| >= half_width(); t is in input samples.
  [[nodiscard]] double half_width() const { return half_width_; }
  [[nodiscard]] PrototypeKind kind() const { return kind_; }
  // Direct equiripple prototypes exist only at t = integer / up: no interpolated rows.
  [[nodiscard]] bool exact_rows_only() const { return kind_ == PrototypeKind::kEquiripple; }
  // The impulse response at t. Sampled at unit spacing times nominal_gain(), it has unit
  // passband gain: the direct equiripple filter is defined at up x the input rate.
  [[nodiscard]] double operator()(double t) const;
  [[nodiscard]] double nominal_gain() const {
    return kind_ == PrototypeKind::kEquiripple ? up_ : 1.0;
  }

 private:
  struct Kaiser {  // 2 cutoff sinc(2 cutoff t) w(t / half_width), tabulated for speed
    double cutoff = 0, half_width = 0, beta = 0, i0_beta = 1;
    std::vector<double> table;  // at t = i * step, i in [0, kTablePoints]
    double step = 0;
    [[nodiscard]] double exact(double t) const;
    [[nodiscard]] double operator()(double t) const;
  };
  // cutoff and transition in cycles per input sample.
  static Kaiser kaiser_design(double cutoff, double transition, double attenuation_db);

  PrototypeKind kind_ = PrototypeKind::kKaiser;
  double half_width_ = 0;
  double up_ = 1;
  Kaiser kaiser_;                             // the whole filter, or g's image remover
  std::shared_ptr<const std::vector<double>> taps_;  // the equiripple filter (direct or g)
  double spacing_ = 0;  // g's sample spacing in input samples
};

}  // namespace anunzi::detail
