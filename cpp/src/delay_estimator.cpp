#include "anunzi/delay_estimator.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace anunzi {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Close to 8 kHz: the rate the correlation runs at (speech echo lives below 4 kHz).
constexpr int kAnalysisRate = 8000;
constexpr double kWindowSeconds = 0.512;  // capture window correlated per hop
constexpr int kHopsPerWindow = 4;         // hop = 128 ms
// Hops of far-end activity needed before any candidate counts (about 0.4 s).
constexpr std::uint64_t kMinActiveHops = 3;
// Mean squares below these (about -60 and -80 dBFS) carry no usable information.
constexpr double kReferenceFloor = 1e-6;
constexpr double kCaptureFloor = 1e-8;
// Whitening band: below 100 Hz rumble, above 3.8 kHz the decimation filter's slope.
constexpr double kBandLowHz = 100.0;
constexpr double kBandHighHz = 3800.0;
// Peaks closer than this to the main peak are its own shoulder, not a rival.
constexpr double kRivalExclusionMs = 2.0;

std::size_t next_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

void validate(const DelayEstimatorConfig& c) {
  if (c.sample_rate < 8000 || c.sample_rate > 384000) {
    throw std::invalid_argument("sample_rate must be between 8000 and 384000 Hz, got " +
                                std::to_string(c.sample_rate));
  }
  if (!(c.max_delay_ms > 0.0) || c.max_delay_ms > 2000.0) {
    throw std::invalid_argument("max_delay_ms must be in (0, 2000]");
  }
  if (!(c.smoothing_s > 0.0) || !std::isfinite(c.smoothing_s)) {
    throw std::invalid_argument("smoothing_s must be > 0");
  }
  if (c.confirmations < 1) throw std::invalid_argument("confirmations must be >= 1");
  if (!(c.min_confidence >= 0.0 && c.min_confidence <= 1.0)) {
    throw std::invalid_argument("min_confidence must be in [0, 1]");
  }
  if (!(c.hysteresis_ms >= 0.0) || !(c.agreement_ms >= 0.0)) {
    throw std::invalid_argument("hysteresis_ms and agreement_ms must be >= 0");
  }
  if (!std::isfinite(c.initial_delay_ms) || c.initial_delay_ms < 0.0 ||
      c.initial_delay_ms > c.max_delay_ms) {
    throw std::invalid_argument("initial_delay_ms must be between 0 and max_delay_ms");
  }
}

std::vector<std::complex<double>> make_twiddles(std::size_t size) {
  std::vector<std::complex<double>> w(size / 2);
  for (std::size_t k = 0; k < w.size(); ++k) {
    const double a = -2.0 * kPi * static_cast<double>(k) / static_cast<double>(size);
    w[k] = {std::cos(a), std::sin(a)};
  }
  return w;
}

// Iterative radix-2 decimation in time. Written out in real arithmetic: std::complex's
// operator* may call a slow NaN-aware helper (C99 Annex G) in every butterfly.
void fft_in_place(std::complex<double>* data, std::size_t size,
                  const std::vector<std::complex<double>>& twiddles, bool inverse) {
  for (std::size_t i = 1, j = 0; i < size; ++i) {
    std::size_t bit = size >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j |= bit;
    if (i < j) std::swap(data[i], data[j]);
  }
  auto* d = reinterpret_cast<double*>(data);  // complex<double> is two doubles by standard
  const double sign = inverse ? -1.0 : 1.0;
  for (std::size_t len = 2; len <= size; len <<= 1) {
    const std::size_t half = len >> 1;
    const std::size_t step = size / len;
    for (std::size_t start = 0; start < size; start += len) {
      for (std::size_t k = 0; k < half; ++k) {
        const double wr = twiddles[k * step].real();
        const double wi = sign * twiddles[k * step].imag();
        double* a = d + 2 * (start + k);
        double* b = d + 2 * (start + k + half);
        const double br = b[0] * wr - b[1] * wi;
        const double bi = b[0] * wi + b[1] * wr;
        b[0] = a[0] - br;
        b[1] = a[1] - bi;
        a[0] += br;
        a[1] += bi;
      }
    }
  }
}

DelayEstimator::DelayEstimator(const DelayEstimatorConfig& config) : config_(config) {
  validate(config_);
  decimation_ = std::max(1, config_.sample_rate / kAnalysisRate);
  analysis_rate_ = static_cast<double>(config_.sample_rate) / decimation_;
  // Butterworth sections (Q of the 4th-order poles), bilinear transform (RBJ's low-pass),
  // cut off at 0.45 of the analysis rate: what folds back is 30+ dB down.
  const double w0 = 2 * kPi * 0.45 * analysis_rate_ / config_.sample_rate;
  const double q_values[2] = {0.54119610, 1.30656296};
  for (int s = 0; s < 2; ++s) {
    const double alpha = std::sin(w0) / (2 * q_values[s]), c = std::cos(w0);
    const double a0 = 1 + alpha;
    stages_[s] = {(1 - c) / 2 / a0, (1 - c) / a0, (1 - c) / 2 / a0, -2 * c / a0, (1 - alpha) / a0};
  }
  window_ = static_cast<std::size_t>(std::lround(kWindowSeconds * analysis_rate_));
  max_lag_ = static_cast<std::size_t>(std::ceil(config_.max_delay_ms * analysis_rate_ / 1000.0));
  fft_size_ = next_pow2(window_ + max_lag_);
  hop_ = window_ / kHopsPerWindow;
  forget_ = std::exp(-(static_cast<double>(hop_) / analysis_rate_) / config_.smoothing_s);
  reference_.assign(window_ + max_lag_, 0.0f);
  capture_.assign(window_ + max_lag_, 0.0f);
  spectrum_.assign(fft_size_ / 2 + 1, {0.0, 0.0});
  work_.assign(fft_size_, {0.0, 0.0});
  twiddles_ = make_twiddles(fft_size_);
  correlation_.assign(max_lag_ + 1, 0.0);
  recent_.reserve(static_cast<std::size_t>(config_.confirmations) + 1);
  reset();
}

void DelayEstimator::reset() {
  phase_ = 0;
  ref_filter_ = Lowpass{};
  cap_filter_ = Lowpass{};
  std::fill(reference_.begin(), reference_.end(), 0.0f);
  std::fill(capture_.begin(), capture_.end(), 0.0f);
  filled_ = 0;
  since_hop_ = 0;
  std::fill(spectrum_.begin(), spectrum_.end(), std::complex<double>{0.0, 0.0});
  spectrum_started_ = false;
  published_ms_ = config_.initial_delay_ms;
  has_estimate_ = false;
  confidence_ = 0;
  candidate_ms_ = -1;
  recent_.clear();
  changes_ = hops_ = active_hops_ = 0;
}

double DelayEstimator::Lowpass::run(const Biquad (&stages)[2], double x) {
  // Transposed direct form II, two sections.
  for (int s = 0; s < 2; ++s) {
    const Biquad& q = stages[s];
    const double y = q.b0 * x + z[s][0];
    z[s][0] = q.b1 * x - q.a1 * y + z[s][1];
    z[s][1] = q.b2 * x - q.a2 * y;
    x = y;
  }
  return x;
}

void DelayEstimator::process(const float* reference, const float* capture, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    // A non-finite sample would poison the filters' state for ever: it counts as silence.
    const double r = std::isfinite(reference[i]) ? reference[i] : 0.0;
    const double c = std::isfinite(capture[i]) ? capture[i] : 0.0;
    const double rf = decimation_ > 1 ? ref_filter_.run(stages_, r) : r;
    const double cf = decimation_ > 1 ? cap_filter_.run(stages_, c) : c;
    if (++phase_ == decimation_) {
      push_decimated(static_cast<float>(rf), static_cast<float>(cf));
      phase_ = 0;
    }
  }
}

void DelayEstimator::push_decimated(float reference, float capture) {
  // Histories are kept in order (oldest first) by shifting once per hop, not per sample.
  const std::size_t length = reference_.size();
  const std::size_t at = length - hop_ + since_hop_;
  reference_[at] = reference;
  capture_[at] = capture;
  if (++since_hop_ < hop_) return;
  since_hop_ = 0;
  filled_ = std::min(length, filled_ + hop_);
  // From the first full capture window on: the reference's older end is zeros until filled,
  // which adds nothing to the correlation, so the first estimate comes within a second.
  if (filled_ >= window_) analyse();
  std::move(reference_.begin() + static_cast<std::ptrdiff_t>(hop_), reference_.end(),
            reference_.begin());
  std::move(capture_.begin() + static_cast<std::ptrdiff_t>(hop_), capture_.end(),
            capture_.begin());
}

void DelayEstimator::analyse() {
  ++hops_;
  // x: the reference from max_lag before the capture window to its end; y: the capture window.
  const std::size_t length = reference_.size();
  const float* x = reference_.data();
  const float* y = capture_.data() + (length - window_);
  double ex = 0, ey = 0;
  for (std::size_t i = 0; i < length; ++i) ex += double(x[i]) * x[i];
  for (std::size_t i = 0; i < window_; ++i) ey += double(y[i]) * y[i];
  ex /= static_cast<double>(length);
  ey /= static_cast<double>(window_);
  if (ex < kReferenceFloor || ey < kCaptureFloor) return;  // the far end is silent
  ++active_hops_;
  // Each active hop counts equally, whatever its level.
  const double gx = 1.0 / std::sqrt(ex), gy = 1.0 / std::sqrt(ey);
  for (std::size_t i = 0; i < fft_size_; ++i) {
    const double re = i < length ? x[i] * gx : 0.0;
    const double im = i < window_ ? y[i] * gy : 0.0;
    work_[i] = {re, im};
  }
  fft_in_place(work_.data(), fft_size_, twiddles_, false);
  // Unpack the two real spectra and accumulate conj(Y) X, whose inverse transform at lag k is
  // sum_j y[j] x[j + k]: the echo of x[t - d] lines up at k = max_lag - d.
  const std::size_t half = fft_size_ / 2;
  const double keep = spectrum_started_ ? forget_ : 0.0;
  spectrum_started_ = true;
  double peak_magnitude = 0;
  for (std::size_t k = 0; k <= half; ++k) {
    const std::complex<double> zk = work_[k];
    const std::complex<double> zc = std::conj(work_[(fft_size_ - k) % fft_size_]);
    const double xr = 0.5 * (zk.real() + zc.real()), xi = 0.5 * (zk.imag() + zc.imag());
    // Y = (zk - zc) / 2i
    const double yr = 0.5 * (zk.imag() - zc.imag()), yi = -0.5 * (zk.real() - zc.real());
    // conj(Y) * X
    const double cr = yr * xr + yi * xi, ci = yr * xi - yi * xr;
    spectrum_[k] = {keep * spectrum_[k].real() + cr, keep * spectrum_[k].imag() + ci};
    peak_magnitude = std::max(peak_magnitude, std::abs(spectrum_[k]));
  }
  if (active_hops_ < kMinActiveHops || !(peak_magnitude > 0)) return;
  // PHAT within the band, then back to lags.
  const double bin_hz = analysis_rate_ / static_cast<double>(fft_size_);
  const auto low = static_cast<std::size_t>(std::ceil(kBandLowHz / bin_hz));
  const auto high = static_cast<std::size_t>(
      std::min(static_cast<double>(half) - 1, std::floor(std::min(kBandHighHz,
                                                                  0.475 * analysis_rate_) /
                                                         bin_hz)));
  const double floor = 1e-9 * peak_magnitude;
  std::fill(work_.begin(), work_.end(), std::complex<double>{0.0, 0.0});
  for (std::size_t k = low; k <= high; ++k) {
    const std::complex<double> g = spectrum_[k] / (std::abs(spectrum_[k]) + floor);
    work_[k] = g;
    work_[fft_size_ - k] = std::conj(g);
  }
  fft_in_place(work_.data(), fft_size_, twiddles_, true);
  std::size_t best = 0;
  for (std::size_t k = 0; k <= max_lag_; ++k) {
    correlation_[k] = work_[k].real();
    if (correlation_[k] > correlation_[best]) best = k;
  }
  const double peak = correlation_[best];
  const auto exclusion =
      static_cast<std::size_t>(std::ceil(kRivalExclusionMs * analysis_rate_ / 1000.0));
  double rival = 0;
  for (std::size_t k = 0; k <= max_lag_; ++k) {
    const std::size_t distance = k > best ? k - best : best - k;
    if (distance > exclusion) rival = std::max(rival, correlation_[k]);
  }
  const double confidence = peak > 0 ? std::clamp(1.0 - rival / peak, 0.0, 1.0) : 0.0;
  // Parabolic interpolation around the peak: sub-sample lag.
  double lag = static_cast<double>(best);
  if (best > 0 && best < max_lag_) {
    const double a = correlation_[best - 1], b = correlation_[best + 1];
    const double curvature = a - 2 * peak + b;
    if (curvature < 0) lag += std::clamp(0.5 * (a - b) / curvature, -0.5, 0.5);
  }
  const double delay_ms = (static_cast<double>(max_lag_) - lag) * 1000.0 / analysis_rate_;
  consider(std::max(0.0, delay_ms), confidence);
}

void DelayEstimator::consider(double candidate_ms, double confidence) {
  candidate_ms_ = candidate_ms;
  confidence_ = confidence;
  if (confidence < config_.min_confidence) {
    recent_.clear();
    return;
  }
  for (double previous : recent_) {
    if (std::abs(previous - candidate_ms) > config_.agreement_ms) {
      recent_.clear();
      break;
    }
  }
  recent_.push_back(candidate_ms);
  if (recent_.size() > static_cast<std::size_t>(config_.confirmations)) {
    recent_.erase(recent_.begin());
  }
  if (recent_.size() < static_cast<std::size_t>(config_.confirmations)) return;
  double mean = 0;
  for (double v : recent_) mean += v;
  mean /= static_cast<double>(recent_.size());
  if (!has_estimate_) {
    has_estimate_ = true;
    published_ms_ = mean;
  } else if (std::abs(mean - published_ms_) > config_.hysteresis_ms) {
    ++changes_;
    published_ms_ = mean;
  }
}

ReferenceAligner::ReferenceAligner(const DelayEstimatorConfig& config, double margin_ms,
                                   double engage_ms)
    : estimator_(config), margin_ms_(margin_ms), engage_ms_(engage_ms) {
  if (!std::isfinite(margin_ms) || margin_ms < 0.0 || margin_ms > config.max_delay_ms) {
    throw std::invalid_argument("margin_ms must be between 0 and max_delay_ms");
  }
  if (!std::isfinite(engage_ms) || engage_ms < 0.0 || engage_ms > config.max_delay_ms) {
    throw std::invalid_argument("engage_ms must be between 0 and max_delay_ms");
  }
  const auto max_samples = static_cast<std::size_t>(
      std::ceil(config.max_delay_ms * config.sample_rate / 1000.0));
  history_.assign(max_samples + 1, 0.0f);
  applied_ = target_delay();
}

std::size_t ReferenceAligner::target_delay() {
  const double estimate = estimator_.delay_ms();
  if (!engaged_ && estimate >= engage_ms_) {
    engaged_ = true;
  } else if (engaged_ && estimate < 0.75 * engage_ms_) {
    engaged_ = false;
  }
  if (!engaged_) return 0;
  const double ms = std::max(0.0, estimate - margin_ms_);
  const auto samples = static_cast<std::size_t>(
      std::lround(ms * estimator_.config().sample_rate / 1000.0));
  return std::min(samples, history_.size() - 1);
}

void ReferenceAligner::process(const float* reference, const float* capture, float* aligned,
                               std::size_t n) {
  // The delay may change between calls, never inside one: a jump is one discontinuity.
  applied_ = target_delay();
  const std::size_t size = history_.size();
  const std::size_t back = size - applied_;  // read = write - applied, modulo size
  for (std::size_t i = 0; i < n; ++i) {
    history_[write_] = reference[i];
    std::size_t read = write_ + back;
    if (read >= size) read -= size;
    aligned[i] = history_[read];
    if (++write_ == size) write_ = 0;
  }
  estimator_.process(reference, capture, n);
}

void ReferenceAligner::reset() {
  estimator_.reset();
  std::fill(history_.begin(), history_.end(), 0.0f);
  write_ = 0;
  engaged_ = false;
  applied_ = target_delay();
}

}  // namespace anunzi
