#include "oneshot.hpp"

#include <algorithm>
#include <exception>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace anunzi::detail {
namespace {

// A thread costs tens of microseconds to start and warm up: each must have at least this much
// work (about 0.2 ms) to be worth it.
constexpr double kMinMultiplyAddsPerThread = 5e6;
constexpr unsigned kMaxThreads = 64;

template <typename View>
View frames_of(const View& v, std::uint64_t from, std::uint64_t count) {
  View part = v;
  using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<decltype(v.data)>>,
                                  const unsigned char, unsigned char>;
  if (count > 0) {
    part.data = static_cast<Byte*>(v.data) + static_cast<std::ptrdiff_t>(from) * v.frame_stride *
                                                 static_cast<std::ptrdiff_t>(sample_size(v.type));
  }
  part.frames = static_cast<std::size_t>(count);
  return part;
}

// How a one-shot conversion is split: part j feeds input [in_begin[j], in_end[j]) to its own
// fresh stream, which produces outputs [out_begin[j], out_begin[j + 1]); the last part
// flushes. Each stream starts where its first output's filter window starts, so every output
// sees exactly the samples it sees in one pass.
// Part 0 runs on the stream itself (cleared), the others on copies sharing its design.
struct OneshotPlan {
  std::vector<std::uint64_t> in_begin, in_end, out_begin;
  std::vector<std::unique_ptr<Stream>> copies;  // copies[j - 1] runs part j
  [[nodiscard]] unsigned parts() const { return static_cast<unsigned>(copies.size()) + 1; }
};

OneshotPlan plan_oneshot(const Stream& stream, std::uint64_t n, unsigned threads) {
  const StreamState& st = stream.state();
  const std::uint64_t total = st.oneshot_frames(n);
  const double work = static_cast<double>(total) * static_cast<double>(st.channels) *
                      st.multiply_adds_per_output();
  const auto parts = static_cast<unsigned>(std::max(
      1.0, std::min({static_cast<double>(std::max(1u, threads)),
                     work / kMinMultiplyAddsPerThread, static_cast<double>(kMaxThreads)})));
  OneshotPlan plan;
  plan.in_begin.assign(parts, 0);
  plan.in_end.assign(parts, 0);
  plan.out_begin.assign(parts + 1, 0);
  plan.out_begin[parts] = total;
  for (unsigned j = 0; j < parts; ++j) {
    plan.in_end[j] = j + 1 == parts ? n : n * (j + 1) / parts;
    if (j > 0) plan.out_begin[j] = st.ready_count(plan.in_end[j - 1]);
  }
  // Part 0 is a fresh stream fed in_end[0] samples: it produces out_begin[1] outputs by
  // definition. Each later part must check out.
  bool valid = parts == 1 || plan.out_begin[1] > 0;
  for (unsigned j = 1; valid && j < parts; ++j) {
    plan.copies.push_back(stream.fresh_copy());
    Stream& copy = *plan.copies.back();
    plan.in_begin[j] = copy.start_at_output(plan.out_begin[j]);
    const bool last = j + 1 == parts;
    valid = plan.out_begin[j] < plan.out_begin[j + 1] && plan.in_begin[j] <= plan.in_end[j] &&
            copy.state().output_frames_for(plan.in_end[j] - plan.in_begin[j], last) ==
                plan.out_begin[j + 1] - plan.out_begin[j];
  }
  if (!valid) {  // a split that would not partition the output (tiny inputs): one pass
    plan.copies.clear();
    plan.in_begin = {0};
    plan.in_end = {n};
    plan.out_begin = {0, total};
  }
  return plan;
}

}  // namespace

unsigned oneshot_parts(const Stream& stream, std::uint64_t in_frames, unsigned threads) {
  return plan_oneshot(stream, in_frames, threads).parts();
}

void oneshot(Stream& stream, const StridedConstView& in, const StridedView& out,
             unsigned threads) {
  stream.clear();
  OneshotPlan plan = plan_oneshot(stream, in.frames, threads);
  const unsigned parts = plan.parts();
  auto run = [&](unsigned j) {
    Stream& part = j == 0 ? stream : *plan.copies[j - 1];
    part.process(
        frames_of(in, plan.in_begin[j], plan.in_end[j] - plan.in_begin[j]), j + 1 == parts,
        frames_of(out, plan.out_begin[j], plan.out_begin[j + 1] - plan.out_begin[j]));
  };
  std::vector<std::exception_ptr> errors(parts);
  auto guarded = [&](unsigned j) {
    try {
      run(j);
    } catch (...) {
      errors[j] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(parts - 1);
  unsigned started = 1;  // parts 1 .. started - 1 have threads
  for (; started < parts; ++started) {
    try {
      workers.emplace_back(guarded, started);
    } catch (const std::system_error&) {
      break;  // no more threads to be had (a process limit): this thread does the rest
    }
  }
  guarded(0);
  for (unsigned j = started; j < parts; ++j) guarded(j);
  for (auto& w : workers) w.join();
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace anunzi::detail
