#include "state.hpp"

#include <algorithm>

namespace anunzi::detail {

void StreamState::restart() {
  total_in = 0;
  emitted = 0;
  next_index = 0;
  next_phase = 0;
  clips = 0;
  finished = false;
}

std::uint64_t StreamState::ready_count(std::uint64_t total_in_frames) const {
  if (total_in_frames <= after) return 0;
  const std::uint64_t q = total_in_frames - after;  // need floor(k * down / up) < q
  return (q * up + down - 1) / down;
}

std::uint64_t StreamState::oneshot_length(std::uint64_t in_frames) const {
  return (2 * in_frames * up + down) / (2 * down);
}

std::uint64_t StreamState::oneshot_frames(std::uint64_t in_frames) const {
  return std::max(oneshot_length(in_frames), ready_count(in_frames));
}

std::uint64_t StreamState::output_frames_for(std::uint64_t in_frames, bool last) const {
  const std::uint64_t total = total_in + in_frames;
  const std::uint64_t total_out =
      last ? std::max(oneshot_length(total), ready_count(total)) : ready_count(total);
  return total_out > emitted ? total_out - emitted : 0;
}

double StreamState::delay() const {
  if (finished) return 0.0;
  const double owed = static_cast<double>(total_in) * static_cast<double>(up) /
                          static_cast<double>(down) -
                      static_cast<double>(emitted);
  return std::max(0.0, owed);
}

double StreamState::latency_frames() const {
  return static_cast<double>(after) * static_cast<double>(up) / static_cast<double>(down);
}

const char* StreamState::design_method() const {
  switch (kind) {
    case PrototypeKind::kEquiripple:
      return "equiripple";
    case PrototypeKind::kSmoothedEquiripple:
      return "smoothed equiripple";
    case PrototypeKind::kKaiser:
      break;
  }
  return "kaiser";
}

}  // namespace anunzi::detail
