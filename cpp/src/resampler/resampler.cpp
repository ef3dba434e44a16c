// The public Resampler: argument checks, then the stream (stream.hpp) does the work.
#include "anunzi/resampler.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "kernels.hpp"
#include "oneshot.hpp"
#include "ratio.hpp"
#include "spec.hpp"
#include "stream.hpp"

namespace anunzi {

bool quality_is_valid(int quality) {
  return quality == 0 || quality == 1 || quality == 2 || quality == 4 || quality == 6;
}

Resampler::Resampler(double in_rate, double out_rate, std::size_t num_channels, Quality quality,
                     SampleType io_type, Isa isa) {
  if (!(std::isfinite(in_rate) && std::isfinite(out_rate)) || in_rate <= 0.0 || out_rate <= 0.0)
    throw std::invalid_argument("Sample rate should be over 0");
  if (num_channels == 0) throw std::invalid_argument("Channel num must be at least 1");
  if (!quality_is_valid(static_cast<int>(quality)))
    throw std::invalid_argument("Quality must be one of [QQ, LQ, MQ, HQ, VHQ]");
  if (!isa_supported(isa)) throw std::invalid_argument("instruction set not supported");
  const detail::FilterSpec spec = detail::filter_spec(quality);
  const bool use_double =
      spec.double_precision || io_type == SampleType::kFloat64 || io_type == SampleType::kInt32;
  stream_ = std::make_unique<detail::Stream>(detail::rate_ratio(in_rate, out_rate), out_rate,
                                             num_channels, spec, use_double, isa);
}

Resampler::~Resampler() = default;
Resampler::Resampler(Resampler&&) noexcept = default;
Resampler& Resampler::operator=(Resampler&&) noexcept = default;

std::size_t Resampler::output_frames_for(std::size_t in_frames, bool last) const {
  return static_cast<std::size_t>(stream_->state().output_frames_for(in_frames, last));
}

std::size_t Resampler::process(const StridedConstView& in, bool last, const StridedView& out) {
  if (in.frames > 0 && in.data == nullptr) throw std::invalid_argument("null input");
  return stream_->process(in, last, out);
}

void Resampler::clear() { stream_->clear(); }

double Resampler::delay() const { return stream_->state().delay(); }
double Resampler::latency_frames() const { return stream_->state().latency_frames(); }
std::uint64_t Resampler::num_clips() const { return stream_->state().clips; }
std::size_t Resampler::num_channels() const { return stream_->state().channels; }
std::size_t Resampler::taps_per_output() const {
  return static_cast<std::size_t>(std::ceil(stream_->state().multiply_adds_per_output() - 1e-9));
}
std::size_t Resampler::num_phases() const { return stream_->state().stages.back().rows; }

bool Resampler::interpolated_phases() const {
  for (const auto& s : stream_->state().stages) {
    if (s.interpolated) return true;
  }
  return false;
}

std::string Resampler::design_method() const {
  std::string method;
  for (const auto& s : stream_->state().stages) {
    method += (method.empty() ? "" : " + ") + std::string(s.design_method());
  }
  return method;
}

std::vector<ResamplerStage> Resampler::stages() const {
  std::vector<ResamplerStage> out;
  for (const auto& s : stream_->state().stages) {
    const char* kernel = s.kernel == detail::StageKernel::kCorrelate ? "correlate"
                         : s.kernel == detail::StageKernel::kLanes   ? "lanes"
                                                                     : "interpolated";
    out.push_back({s.up, s.down, s.taps, s.rows, s.nonzero_taps,
                   static_cast<double>(s.after) * static_cast<double>(s.up) /
                       static_cast<double>(s.down),
                   s.interpolated, s.design_method(), kernel});
  }
  return out;
}
Isa Resampler::isa() const { return stream_->state().isa; }
bool Resampler::double_precision() const { return stream_->state().double_precision; }
std::uint64_t Resampler::out_step() const { return stream_->state().up; }
std::uint64_t Resampler::in_step() const { return stream_->state().down; }

std::size_t Resampler::oneshot_length(std::size_t in_frames) const {
  return static_cast<std::size_t>(stream_->state().oneshot_length(in_frames));
}

std::size_t Resampler::oneshot_frames(std::size_t in_frames) const {
  return static_cast<std::size_t>(stream_->state().oneshot_frames(in_frames));
}

unsigned Resampler::oneshot_parts(std::size_t in_frames, unsigned threads) const {
  return detail::oneshot_parts(*stream_, in_frames, threads);
}

double fma_peak(Isa isa, int rounds) {
  if (!isa_supported(isa)) throw std::invalid_argument("instruction set not supported");
  const detail::Kernels<float> k = detail::kernels_for<float>(isa);
  float seeds[detail::kProbeChains + 2];
  for (std::size_t i = 0; i < detail::kProbeChains; ++i) seeds[i] = 1.0f + 0.01f * i;
  seeds[detail::kProbeChains] = 0.999f;
  seeds[detail::kProbeChains + 1] = 0.001f;
  // A millisecond or so per round at tens of G multiply-adds/s.
  const std::size_t iterations = 4'000'000 / (detail::kProbeChains * k.lanes);
  double best = 0.0;
  volatile float sink = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    sink = sink + k.fma_probe(seeds, iterations);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    const double rate = static_cast<double>(iterations * detail::kProbeChains * k.lanes) /
                        took.count();
    best = std::max(best, rate);
  }
  return best;
}

void Resampler::oneshot(const StridedConstView& in, const StridedView& out, unsigned threads) {
  if (out.frames != oneshot_frames(in.frames))
    throw std::invalid_argument("output view has the wrong number of frames");
  if (in.frames > 0 && in.data == nullptr) throw std::invalid_argument("null input");
  detail::oneshot(*stream_, in, out, threads);
}

}  // namespace anunzi
