#pragma once
// What an audio device callback hands to the rest of the program without waiting or taking a
// lock: blocks of samples, each stamped with the time its first sample met the air (the DAC
// time of a played block, the ADC time of a captured one), and, for the speaker, when the
// agent started and stopped being heard.
//
// Both are pairs of SpscRings: the producer is the device callback (PortAudio's thread, or a
// test), the consumer the thread that runs the echo canceller. A block that does not fit is
// dropped whole and counted: the callback never waits, and the consumer can always tell a
// gap (block numbering counts dropped samples) from a continuation.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "anunzi/spsc_ring.hpp"

namespace anunzi {

struct TapBlock {
  double time = 0;              // seconds on the caller's clock, of the block's first sample
  std::uint64_t first_sample = 0;  // index in the producer's numbering (dropped ones count)
  std::uint32_t frames = 0;
  std::uint32_t real = 0;       // for played blocks: how many leading samples were audio
};

class TimedTap {
 public:
  // Throws std::invalid_argument for a zero capacity.
  TimedTap(std::size_t sample_capacity, std::size_t block_capacity)
      : samples_(sample_capacity), blocks_(block_capacity) {}

  // Producer thread only. Stores the whole block or, if it does not fit, nothing (counted).
  // `real` is recorded with the block (the number of leading non-silent samples, if known).
  bool push(const float* data, std::size_t n, double time, std::size_t real) noexcept {
    const std::uint64_t first = next_sample_;
    next_sample_ += n;
    if (n == 0) return true;
    if (samples_.writable() < n || blocks_.writable() < 1) {
      dropped_blocks_.fetch_add(1, std::memory_order_relaxed);
      dropped_samples_.fetch_add(n, std::memory_order_relaxed);
      return false;
    }
    (void)samples_.write(data, n);  // fits: checked above, and only this thread writes
    const TapBlock block{time, first, static_cast<std::uint32_t>(n),
                         static_cast<std::uint32_t>(real < n ? real : n)};
    (void)blocks_.write(&block, 1);  // after the samples: a visible block has its samples
    return true;
  }

  // Consumer thread only. The next block's header, without taking it.
  bool peek(TapBlock& block) noexcept {
    if (blocks_.readable() < 1) return false;
    // A ring has no peek: keep the header read aside until taken.
    if (!pending_) {
      if (blocks_.read(&pending_block_, 1) != 1) return false;
      pending_ = true;
    }
    block = pending_block_;
    return true;
  }

  // Consumer thread only. Takes the next block: its header, and its samples into `out`
  // (which must hold block.frames samples). Returns false when none is ready.
  bool pop(TapBlock& block, float* out, std::size_t capacity) noexcept {
    if (!pending_ && !peek(block)) return false;
    block = pending_block_;
    if (capacity < block.frames) return false;
    pending_ = false;
    return samples_.read(out, block.frames) == block.frames;
  }

  // Consumer thread only: whether a block is ready.
  bool ready() const noexcept { return pending_ || blocks_.readable() > 0; }

  // Any thread (snapshots).
  std::uint64_t dropped_blocks() const noexcept {
    return dropped_blocks_.load(std::memory_order_relaxed);
  }
  std::uint64_t dropped_samples() const noexcept {
    return dropped_samples_.load(std::memory_order_relaxed);
  }
  std::size_t sample_capacity() const noexcept { return samples_.capacity(); }

  // Consumer thread only: waits until a block is ready or the timeout passes.
  bool wait_ready(std::chrono::nanoseconds timeout) noexcept {
    if (pending_) return true;
    return blocks_.wait_for_readable(1, timeout);
  }

 private:
  SpscRing<float> samples_;
  SpscRing<TapBlock> blocks_;
  std::uint64_t next_sample_ = 0;  // producer's
  TapBlock pending_block_{};        // consumer's
  bool pending_ = false;            // consumer's
  alignas(kCacheLine) std::atomic<std::uint64_t> dropped_blocks_{0};
  std::atomic<std::uint64_t> dropped_samples_{0};
};

// When the agent starts and stops being heard, found in the speaker's callback from what the
// jitter buffer handed it: audio after silence starts a stretch of speech; `gap_samples` of
// silence end it, dated at its last audible sample. Events go through an SpscRing to one
// consumer; if it falls behind by more than the ring holds, the newest are dropped (counted).
struct PlayoutEvent {
  std::int32_t started = 0;  // 1 started, 0 stopped
  double heard_at = 0;       // seconds on the producer's clock
  std::uint64_t sample = 0;  // index of the first (or just past the last) audible sample
};

class PlayoutMonitor {
 public:
  explicit PlayoutMonitor(double sample_rate, std::size_t gap_samples,
                          std::size_t capacity = 256)
      : rate_(sample_rate), gap_(gap_samples == 0 ? 1 : gap_samples), events_(capacity) {}

  // Producer thread only: a block of n samples was handed to the device, of which the first
  // `real` were audio (the jitter buffer puts audio before silence); its first sample is
  // heard at `heard_at`.
  void on_block(std::size_t n, std::size_t real, double heard_at) noexcept {
    const std::uint64_t first = played_;
    played_ += n;
    real_.fetch_add(real, std::memory_order_relaxed);
    if (real > 0) {
      if (!speaking_) {
        speaking_ = true;
        emit({1, heard_at, first});
      }
      last_audio_end_ = first + real;
      last_audio_end_time_ = heard_at + static_cast<double>(real) / rate_;
    }
    if (speaking_ && played_ - last_audio_end_ >= gap_) {
      speaking_ = false;
      emit({0, last_audio_end_time_, last_audio_end_});
    }
    frames_.store(played_, std::memory_order_relaxed);
  }

  // Consumer thread only.
  bool pop(PlayoutEvent& event) noexcept { return events_.read(&event, 1) == 1; }

  // Any thread (snapshots).
  std::uint64_t frames_played() const noexcept { return frames_.load(std::memory_order_relaxed); }
  std::uint64_t audio_played() const noexcept { return real_.load(std::memory_order_relaxed); }
  std::uint64_t dropped_events() const noexcept {
    return dropped_.load(std::memory_order_relaxed);
  }

 private:
  void emit(const PlayoutEvent& e) noexcept {
    if (events_.write(&e, 1) != 1) dropped_.fetch_add(1, std::memory_order_relaxed);
  }

  const double rate_;
  const std::size_t gap_;
  SpscRing<PlayoutEvent> events_;
  // Producer's.
  std::uint64_t played_ = 0;
  bool speaking_ = false;
  std::uint64_t last_audio_end_ = 0;
  double last_audio_end_time_ = 0;
  alignas(kCacheLine) std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> real_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace anunzi
