#pragma once
// A bounded lock-free ring of samples for exactly one producer thread and one consumer thread.
//
// The indices count samples since construction (64-bit, so they never wrap in practice); a
// slot is index % capacity, which lets the capacity be any size, not only a power of two.
// Each side owns its index and keeps a cached copy of the other side's: it reloads that copy
// (acquire) only when the cached value says there is not enough room or data, which keeps the
// two cache lines from bouncing between cores on every call. Publishing an index is a release
// store, so the samples copied before it are visible to the other side after its acquire load.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

namespace anunzi {

inline constexpr std::size_t kCacheLine = 64;

template <typename T>
class SpscRing {
 public:
  // 2^31 samples (8 GiB of float32) is far beyond any audio use; larger requests are mistakes.
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 31;

  explicit SpscRing(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0 || capacity > kMaxCapacity) {
      throw std::invalid_argument("capacity must be between 1 and 2**31 samples");
    }
    slots_ = std::make_unique<T[]>(capacity);  // the only allocation, zero-filled
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  std::size_t capacity() const noexcept { return capacity_; }

  // Producer thread only. Copies up to n samples in; returns how many were taken.
  [[nodiscard]] std::size_t write(const T* data, std::size_t n) noexcept {
    const uint64_t w = write_index_.load(std::memory_order_relaxed);
    std::size_t room = capacity_ - static_cast<std::size_t>(w - cached_read_index_);
    if (room < n) {
      cached_read_index_ = read_index_.load(std::memory_order_acquire);
      room = capacity_ - static_cast<std::size_t>(w - cached_read_index_);
    }
    const std::size_t count = std::min(n, room);
    if (count == 0) return 0;
    const std::size_t start = static_cast<std::size_t>(w % capacity_);
    const std::size_t first = std::min(count, capacity_ - start);
    std::memcpy(slots_.get() + start, data, first * sizeof(T));
    std::memcpy(slots_.get(), data + first, (count - first) * sizeof(T));
    write_index_.store(w + count, std::memory_order_release);
    return count;
  }

  // Producer thread only (exact there; from another thread, a snapshot).
  std::size_t writable() const noexcept {
    // The read index first: it never passes the write index, so a later look at the write
    // index cannot be behind it. The clamp covers a caller on a third thread, which may see
    // the two from different moments.
    const uint64_t r = read_index_.load(std::memory_order_acquire);
    const uint64_t used = write_index_.load(std::memory_order_acquire) - r;
    return used >= capacity_ ? 0 : capacity_ - static_cast<std::size_t>(used);
  }

  // Consumer thread only. Copies up to n samples out; returns how many were read.
  [[nodiscard]] std::size_t read(T* data, std::size_t n) noexcept {
    const uint64_t r = read_index_.load(std::memory_order_relaxed);
    const std::size_t count = std::min(n, available_to_consumer(r, n));
    if (count == 0) return 0;
    const std::size_t start = static_cast<std::size_t>(r % capacity_);
    const std::size_t first = std::min(count, capacity_ - start);
    std::memcpy(data, slots_.get() + start, first * sizeof(T));
    std::memcpy(data + first, slots_.get(), (count - first) * sizeof(T));
    read_index_.store(r + count, std::memory_order_release);
    return count;
  }

  // Consumer thread only. Drops up to n of the oldest samples; returns how many.
  [[nodiscard]] std::size_t discard(std::size_t n) noexcept {
    const uint64_t r = read_index_.load(std::memory_order_relaxed);
    const std::size_t count = std::min(n, available_to_consumer(r, n));
    read_index_.store(r + count, std::memory_order_release);
    return count;
  }

  // Consumer thread only (exact there; from another thread, a snapshot).
  std::size_t readable() const noexcept {
    const uint64_t r = read_index_.load(std::memory_order_relaxed);
    return static_cast<std::size_t>(write_index_.load(std::memory_order_acquire) - r);
  }

  // Consumer thread only. Waits until at least n samples are readable or the timeout passes;
  // returns whether they are. Spins first (a hand-off between running threads takes well
  // under a microsecond), then yields, then sleeps in growing steps of at most 1 ms: waiting
  // never takes a lock, so the producer is never held up by it.
  bool wait_for_readable(std::size_t n, std::chrono::nanoseconds timeout) noexcept {
    WaitingFlag flag(consumer_waiting_, consumer_has_waited_);
    return wait_until([&] { return readable() >= n; }, timeout);
  }

  // Producer thread only. The same for free space.
  bool wait_for_writable(std::size_t n, std::chrono::nanoseconds timeout) noexcept {
    WaitingFlag flag(producer_waiting_, producer_has_waited_);
    return wait_until([&] { return writable() >= n; }, timeout);
  }

  // Any thread: whether each side is inside its wait_for_* call now, and whether it ever
  // called one (hints for callers that act when the other side is idle, such as handing
  // over Python's GIL).
  bool producer_waiting() const noexcept { return producer_waiting_.load(std::memory_order_acquire); }
  bool consumer_waiting() const noexcept { return consumer_waiting_.load(std::memory_order_acquire); }
  bool producer_has_waited() const noexcept {
    return producer_has_waited_.load(std::memory_order_relaxed);
  }
  bool consumer_has_waited() const noexcept {
    return consumer_has_waited_.load(std::memory_order_relaxed);
  }

  // Any thread: samples ever written and read, and the difference (snapshots). The read index
  // is loaded first, so buffered() never comes out negative; as the read index may have moved
  // on by the time the write index is loaded, the difference is capped at the capacity.
  uint64_t total_written() const noexcept { return write_index_.load(std::memory_order_acquire); }
  uint64_t total_read() const noexcept { return read_index_.load(std::memory_order_acquire); }
  uint64_t buffered() const noexcept {
    const uint64_t r = read_index_.load(std::memory_order_acquire);
    return std::min<uint64_t>(write_index_.load(std::memory_order_acquire) - r, capacity_);
  }

 private:
  struct WaitingFlag {
    WaitingFlag(std::atomic<bool>& now, std::atomic<bool>& ever) : flag(now) {
      ever.store(true, std::memory_order_relaxed);
      flag.store(true, std::memory_order_release);
    }
    ~WaitingFlag() { flag.store(false, std::memory_order_release); }
    std::atomic<bool>& flag;
  };

  // A few microseconds of spinning catch a hand-off between two running threads; yielding
  // next lets the other side run if it shares this core (a loaded machine); sleeping last.
  static constexpr unsigned kSpinRounds = 256;
  static constexpr unsigned kYieldRounds = 256;

  template <typename Ready>
  static bool wait_until(Ready ready, std::chrono::nanoseconds timeout) noexcept {
    using Clock = std::chrono::steady_clock;
    if (ready()) return true;
    const auto deadline = Clock::now() + timeout;
    std::chrono::nanoseconds nap = std::chrono::microseconds(20);
    for (unsigned round = 0;; ++round) {
      if (ready()) return true;
      // While spinning the clock is read now and then; once sleeping, every round, and no
      // nap runs past the deadline.
      const bool spinning = round < kSpinRounds;
      if ((!spinning || (round & 63) == 0) && Clock::now() >= deadline) return ready();
      if (spinning) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      } else if (round < kSpinRounds + kYieldRounds) {
        std::this_thread::yield();
      } else {
        const auto left = deadline - Clock::now();
        std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(nap, left));
        nap = std::min<std::chrono::nanoseconds>(nap * 2, std::chrono::milliseconds(1));
      }
    }
  }

  std::size_t available_to_consumer(uint64_t r, std::size_t wanted) noexcept {
    std::size_t available = static_cast<std::size_t>(cached_write_index_ - r);
    if (available < wanted) {
      cached_write_index_ = write_index_.load(std::memory_order_acquire);
      available = static_cast<std::size_t>(cached_write_index_ - r);
    }
    return available;
  }

  // Producer's line: its index and its copy of the consumer's.
  alignas(kCacheLine) std::atomic<uint64_t> write_index_{0};
  uint64_t cached_read_index_ = 0;
  // Consumer's line.
  alignas(kCacheLine) std::atomic<uint64_t> read_index_{0};
  uint64_t cached_write_index_ = 0;
  // Written only inside the waits.
  alignas(kCacheLine) std::atomic<bool> producer_waiting_{false};
  std::atomic<bool> consumer_waiting_{false};
  std::atomic<bool> producer_has_waited_{false};
  std::atomic<bool> consumer_has_waited_{false};
  // Read-only after construction.
  alignas(kCacheLine) const std::size_t capacity_;
  std::unique_ptr<T[]> slots_;
};

}  // namespace anunzi
