#pragma once
// The playback queue between the network (producer) and the audio device (consumer).
//
// - Playback starts after a prefill, and starts again after running dry. A partial prefill
//   also starts once its oldest sample has waited prefill's worth of consumer time, so the
//   last words of a turn are never held back.
// - Running dry while playing outputs silence and counts an underrun; the consumer never waits.
// - Overflow drops the oldest samples; clear() (barge-in) drops everything. Both are counted:
//   samples_in == samples_out + dropped + buffered whenever both sides are idle.
//
// Storage is an SpscRing. Dropping the oldest samples means moving the read index, which the
// consumer owns; so the right to act on the read side is a small token. The consumer only
// try-acquires it (a failed try outputs one block of silence, it never waits); the producer
// acquires it by spinning, which is short because the consumer holds it only for one copy.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "anunzi/spsc_ring.hpp"

namespace anunzi {

struct JitterStats {
  uint64_t samples_in = 0;        // every sample pushed
  uint64_t samples_out = 0;       // real samples handed to the consumer
  uint64_t silence_samples = 0;   // silence handed out (prefill, underruns, contention)
  uint64_t dropped = 0;           // dropped by overflow or clear()
  uint64_t underruns = 0;         // times playback ran dry (the end of each turn counts too)
  uint64_t underrun_samples = 0;  // samples missing in the calls that ran dry
  uint64_t clears = 0;            // calls to clear()
  uint64_t buffered = 0;          // samples waiting now
};

template <typename T>
class JitterBuffer {
 public:
  // Throws std::invalid_argument unless 1 <= max_samples <= SpscRing::kMaxCapacity and
  // prefill_samples <= max_samples.
  JitterBuffer(std::size_t prefill_samples, std::size_t max_samples);

  // Producer thread only. Appends n samples; returns how many old samples were dropped to
  // keep the depth within max_samples (including the head of an oversized chunk).
  std::size_t push(const T* data, std::size_t n);

  // Producer thread only. Drops everything buffered (barge-in); playback prefills again.
  // Safe while the consumer runs. Returns the number of samples dropped.
  std::size_t clear();

  // Consumer thread only. Fills all of out[0, n): buffered samples first, then silence.
  // Returns how many were real samples. Never blocks.
  std::size_t pull(T* out, std::size_t n);

  // Any thread. Each counter is exact and buffered is never negative, but counters read while
  // the other side works come from slightly different moments: the invariant
  // samples_in == samples_out + dropped + buffered holds exactly when both sides are idle.
  JitterStats stats() const;

  std::size_t prefill_samples() const noexcept { return prefill_; }
  std::size_t max_samples() const noexcept { return ring_.capacity(); }
  bool playing() const noexcept { return playing_.load(std::memory_order_relaxed); }

 private:
  enum ReadSide : uint32_t { kFree = 0, kConsumer = 1, kProducer = 2 };

  void acquire_read_side_for_producer() noexcept;
  bool try_acquire_read_side_for_consumer() noexcept;
  void release_read_side() noexcept { read_side_.store(kFree, std::memory_order_release); }
  void add(std::atomic<uint64_t>& counter, uint64_t n) noexcept {
    counter.fetch_add(n, std::memory_order_relaxed);
  }

  SpscRing<T> ring_;
  const std::size_t prefill_;
  alignas(kCacheLine) std::atomic<uint32_t> read_side_{kFree};
  // Read-side state, touched only by the token's holder.
  std::atomic<bool> playing_{false};  // atomic only so playing() can be read from anywhere
  std::size_t waited_while_prefilling_ = 0;

  alignas(kCacheLine) std::atomic<uint64_t> samples_in_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> clears_{0};
  alignas(kCacheLine) std::atomic<uint64_t> samples_out_{0};
  std::atomic<uint64_t> silence_samples_{0};
  std::atomic<uint64_t> underruns_{0};
  std::atomic<uint64_t> underrun_samples_{0};
};

extern template class JitterBuffer<int16_t>;
extern template class JitterBuffer<float>;

}  // namespace anunzi
