#include "emul/source.hpp"

#include <cstring>

namespace rmai::emul {

LocalSource::LocalSource(const Catalog& catalog) : catalog_(catalog), bytes_(catalog.total_bytes()) {
  for (const auto& o : catalog.objects())
    generate(o, 0, std::span(bytes_).subspan(std::uint64_t(o.id) * catalog.object_bytes(), o.bytes));
}

void LocalSource::read(std::uint32_t object, std::uint64_t offset, std::span<std::byte> dst) {
  const auto& o = catalog_.object(object);
  if (offset + dst.size() > o.bytes)
    throw TransportError("read of " + std::to_string(dst.size()) + " bytes at offset " + std::to_string(offset) +
                         " is outside object " + std::to_string(object));
  std::memcpy(dst.data(), bytes_.data() + std::uint64_t(object) * catalog_.object_bytes() + offset, dst.size());
  ++reads_;
}

}  // namespace rmai::emul
