#include "anunzi/jitter_buffer.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ANUNZI_CPU_RELAX() _mm_pause()
#else
#define ANUNZI_CPU_RELAX() ((void)0)
#endif

namespace anunzi {
namespace {

std::size_t checked_max(std::size_t prefill, std::size_t max_samples) {
  if (max_samples == 0 || max_samples > SpscRing<float>::kMaxCapacity) {
    throw std::invalid_argument("max_samples must be between 1 and 2**31");
  }
  if (prefill > max_samples) throw std::invalid_argument("prefill must not exceed max");
  return max_samples;
}

}  // namespace

template <typename T>
JitterBuffer<T>::JitterBuffer(std::size_t prefill_samples, std::size_t max_samples)
    : ring_(checked_max(prefill_samples, max_samples)), prefill_(prefill_samples) {}

template <typename T>
void JitterBuffer<T>::acquire_read_side_for_producer() noexcept {
  // The consumer holds the token for one bounded copy; spin briefly, then yield in case the
  // consumer thread was preempted while holding it.
  for (unsigned attempt = 0;; ++attempt) {
    uint32_t expected = kFree;
    if (read_side_.compare_exchange_weak(expected, kProducer, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      return;
    }
    if (attempt < 64) {
      ANUNZI_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
}

template <typename T>
bool JitterBuffer<T>::try_acquire_read_side_for_consumer() noexcept {
  // The producer holds the token for a few instructions (moving an index); a short spin
  // almost always gets it. Failing that, the caller outputs silence instead of waiting.
  for (unsigned attempt = 0; attempt < 256; ++attempt) {
    uint32_t expected = kFree;
    if (read_side_.compare_exchange_weak(expected, kConsumer, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      return true;
    }
    ANUNZI_CPU_RELAX();
  }
  return false;
}

template <typename T>
std::size_t JitterBuffer<T>::push(const T* data, std::size_t n) {
  add(samples_in_, n);
  std::size_t dropped = 0;
  const std::size_t max_samples = ring_.capacity();
  if (n > max_samples) {  // only the newest max_samples of this chunk can be kept
    dropped = n - max_samples;
    data += dropped;
    n = max_samples;
  }
  if (ring_.writable() < n) {
    acquire_read_side_for_producer();
    // Acting as the consumer while holding the token: make room by dropping the oldest.
    const std::size_t writable = ring_.writable();
    if (writable < n) dropped += ring_.discard(n - writable);
    release_read_side();
  }
  const std::size_t written = ring_.write(data, n);
  (void)written;  // == n: the room was made above and only this thread writes
  if (dropped) add(dropped_, dropped);
  return dropped;
}

template <typename T>
std::size_t JitterBuffer<T>::clear() {
  acquire_read_side_for_producer();
  const std::size_t dropped = ring_.discard(ring_.readable());
  playing_.store(false, std::memory_order_relaxed);
  waited_while_prefilling_ = 0;
  release_read_side();
  add(dropped_, dropped);
  add(clears_, 1);
  return dropped;
}

template <typename T>
std::size_t JitterBuffer<T>::pull(T* out, std::size_t n) {
  std::size_t got = 0;
  if (try_acquire_read_side_for_consumer()) {
    bool playing = playing_.load(std::memory_order_relaxed);
    if (!playing) {
      const std::size_t available = ring_.readable();
      if (available > 0) waited_while_prefilling_ += n;
      if (available > 0 && (available >= prefill_ || waited_while_prefilling_ >= prefill_)) {
        playing = true;
        waited_while_prefilling_ = 0;
      }
    }
    if (playing) {
      got = ring_.read(out, n);
      if (got < n) {  // ran dry: count it and prefill again before resuming
        playing = false;
        add(underruns_, 1);
        add(underrun_samples_, n - got);
      }
    }
    playing_.store(playing, std::memory_order_relaxed);
    release_read_side();
  }
  std::fill(out + got, out + n, T{0});
  add(samples_out_, got);
  add(silence_samples_, n - got);
  return got;
}

template <typename T>
JitterStats JitterBuffer<T>::stats() const {
  JitterStats s;
  s.samples_in = samples_in_.load(std::memory_order_relaxed);
  s.samples_out = samples_out_.load(std::memory_order_relaxed);
  s.silence_samples = silence_samples_.load(std::memory_order_relaxed);
  s.dropped = dropped_.load(std::memory_order_relaxed);
  s.underruns = underruns_.load(std::memory_order_relaxed);
  s.underrun_samples = underrun_samples_.load(std::memory_order_relaxed);
  s.clears = clears_.load(std::memory_order_relaxed);
  s.buffered = ring_.buffered();
  return s;
}

template class JitterBuffer<int16_t>;
template class JitterBuffer<float>;

}  // namespace anunzi
