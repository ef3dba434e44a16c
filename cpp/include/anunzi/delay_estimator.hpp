#pragma once
// The bulk delay between what a speaker played (the reference) and what a microphone heard
// (the capture), found by GCC-PHAT, and a reference delay line that applies it.
//
// Both signals are low-passed (Butterworth, 4th order) and decimated to an analysis rate near
// 8 kHz (speech's echo is there; lag
// resolution 0.125 ms, far finer than an echo canceller's adaptive filter needs). Every hop
// (128 ms), a capture window of 512 ms is correlated against the reference from max_delay
// earlier to now, in one FFT of both (packed as real and imaginary part). The cross-spectrum
// is averaged with exponential forgetting (time constant `smoothing_s`, a few seconds), only
// over hops where the far end was active, and whitened (PHAT: every frequency counts by its
// phase alone, so a loud low vowel does not smear the peak). The lag of the correlation peak
// is the candidate delay; its confidence is how far the peak stands above the best rival
// outside +-2 ms of it (1 - rival / peak).
//
// Hysteresis: the published delay starts at the caller's hint (or 0) and moves only when
// `confirmations` consecutive confident candidates agree within `agreement_ms` and their
// mean differs from the published value by more than `hysteresis_ms`. So noise and double
// talk never make alignment jump, while drift and device changes are followed within a few
// seconds.
//
// Thread-safety: none inside. Each object is used by one thread at a time.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace anunzi {

struct DelayEstimatorConfig {
  int sample_rate = 16000;      // of the signals fed in; 8000 and up
  double max_delay_ms = 500.0;  // lags searched: [0, max_delay_ms]
  double smoothing_s = 2.0;     // time constant of the cross-spectrum average
  double min_confidence = 0.15;
  double hysteresis_ms = 1.0;
  double agreement_ms = 2.0;
  int confirmations = 3;
  double initial_delay_ms = 0.0;  // the published value until an estimate is confirmed
};

// Throws std::invalid_argument for a sample rate below 8000 or above 384000, a max delay
// outside (0, 2000] ms, or a non-positive smoothing time or confirmation count.
void validate(const DelayEstimatorConfig& config);

class DelayEstimator {
 public:
  explicit DelayEstimator(const DelayEstimatorConfig& config);

  // Feeds n samples of each signal, sample-aligned as far as the caller knows (the echo of
  // reference[i] appears in the capture at i + delay). Any n, including 0.
  void process(const float* reference, const float* capture, std::size_t n);

  // The published delay in milliseconds (the initial hint until an estimate is confirmed).
  double delay_ms() const noexcept { return published_ms_; }
  // Whether the published delay comes from the signals (not only the hint).
  bool has_estimate() const noexcept { return has_estimate_; }
  // Confidence of the latest measurement, 0 (none) to 1.
  double confidence() const noexcept { return confidence_; }
  // The latest raw candidate (before hysteresis), or -1 if none yet.
  double candidate_ms() const noexcept { return candidate_ms_; }
  // Times the published delay changed after the first estimate; hops analysed so far.
  std::uint64_t changes() const noexcept { return changes_; }
  std::uint64_t hops() const noexcept { return hops_; }
  std::uint64_t active_hops() const noexcept { return active_hops_; }

  const DelayEstimatorConfig& config() const noexcept { return config_; }
  double analysis_rate() const noexcept { return analysis_rate_; }

  // Forgets everything measured; the published delay goes back to the hint.
  void reset();

 private:
  void push_decimated(float reference, float capture);
  void analyse();
  void consider(double candidate_ms, double confidence);

  DelayEstimatorConfig config_;
  int decimation_;
  double analysis_rate_;
  std::size_t window_;     // capture window (analysis samples)
  std::size_t max_lag_;    // analysis samples
  std::size_t fft_size_;   // power of two >= window + max_lag
  std::size_t hop_;
  double forget_;          // per active hop

  // Decimation: a 4th-order Butterworth low-pass (two biquads) per signal, then every
  // decimation_-th sample.
  struct Biquad {
    double b0 = 1, b1 = 0, b2 = 0, a1 = 0, a2 = 0;
  };
  struct Lowpass {
    double z[2][2] = {{0, 0}, {0, 0}};
    double run(const Biquad (&stages)[2], double x);
  };
  Biquad stages_[2];
  Lowpass ref_filter_, cap_filter_;
  int phase_ = 0;
  // The last window_ + max_lag_ analysis samples of each signal.
  std::vector<float> reference_, capture_;
  std::size_t filled_ = 0;        // valid samples in the histories (saturates)
  std::size_t since_hop_ = 0;

  std::vector<std::complex<double>> spectrum_;  // smoothed conj(Y) X, bins 0..fft_size/2
  std::vector<std::complex<double>> work_;
  std::vector<std::complex<double>> twiddles_;
  std::vector<double> correlation_;
  double reference_floor_ = 0;  // running estimate of the quietest active level
  bool spectrum_started_ = false;

  double published_ms_ = 0;
  bool has_estimate_ = false;
  double confidence_ = 0;
  double candidate_ms_ = -1;
  std::vector<double> recent_;  // the latest consecutive confident candidates
  std::uint64_t changes_ = 0, hops_ = 0, active_hops_ = 0;
};

// The reference delayed by the estimated delay (less a safety margin, so that the reference
// still leads the echo slightly, as an echo canceller needs), with the estimator fed from the
// same calls. The delay applied changes only when the estimator's published delay does.
//
// engage_ms: the alignment is applied only once the estimate reaches it, and dropped again
// when the estimate falls below three quarters of it (hysteresis): below it, the echo
// canceller's own delay search does better than a realignment that restarts it. 0 (the
// default) always applies it.
class ReferenceAligner {
 public:
  // margin_ms: how much earlier than the estimate the reference is left (an echo canceller
  // cannot cancel echo that comes before its reference).
  ReferenceAligner(const DelayEstimatorConfig& config, double margin_ms, double engage_ms = 0.0);

  // aligned[i] = reference[i - applied delay] (zeros before the start). n samples each;
  // `aligned` must not overlap the inputs.
  void process(const float* reference, const float* capture, float* aligned, std::size_t n);

  std::size_t applied_delay_samples() const noexcept { return applied_; }
  double margin_ms() const noexcept { return margin_ms_; }
  double engage_ms() const noexcept { return engage_ms_; }
  bool engaged() const noexcept { return engaged_; }
  DelayEstimator& estimator() noexcept { return estimator_; }
  const DelayEstimator& estimator() const noexcept { return estimator_; }
  void reset();

 private:
  std::size_t target_delay();

  DelayEstimator estimator_;
  double margin_ms_;
  double engage_ms_;
  bool engaged_ = false;
  std::vector<float> history_;  // ring of the last history_.size() reference samples
  std::size_t write_ = 0;       // next slot
  std::size_t applied_ = 0;
};

// In-place radix-2 FFT of a power-of-two size (forward: e^{-i...}; inverse unnormalised),
// with twiddles from make_twiddles(size). Exposed for its test.
std::vector<std::complex<double>> make_twiddles(std::size_t size);
void fft_in_place(std::complex<double>* data, std::size_t size,
                  const std::vector<std::complex<double>>& twiddles, bool inverse);

}  // namespace anunzi
