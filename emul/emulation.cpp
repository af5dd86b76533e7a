#include "emul/emulation.hpp"

#include <unistd.h>

#include <memory>
#include <optional>

#include "emul/control.hpp"
#include "config/errors.hpp"
#include "emul/memd_process.hpp"
#include "emul/remote.hpp"
#include "emul/emul_replay.hpp"
#include "emul/store.hpp"

namespace rmai::emul {
namespace fs = std::filesystem;

Catalog catalog_of(const spec::Experiment& e) {
  // The model's own expert size: emul.scale applies here, whatever the simulator's `experts` says.
  return Catalog({e.model.name, e.model.moe_layers, e.model.experts, e.model.expert_bytes() / e.model.expert_scale,
                  e.emul.scale, e.emul.layer_list, e.seed});
}

bool emulated(const std::string& tier) { return StoreRegistry::instance().contains(tier); }

metrics::RunResult run_emulation(const spec::Experiment& e, const traces::SpilledTrace& trace, const Launch& launch) {
  if (!emulated(e.tier))
    throw InputError(e.values.child("memory").where("tier"),
                     "'" + e.tier + "' has no emulation: " + e.tier_definition->no_emulation + " (emulated: " +
                         StoreRegistry::instance().names_joined() + ")");
  const Catalog catalog = catalog_of(e);
  const bool remote = e.tier_definition->medium == spec::Medium::RemotePool;

  // The secret of a memd this run starts lives in a memfd both processes hold: nothing is left on
  // disk, even when this run is killed with SIGKILL.
  struct Descriptor {
    int fd = -1;
    ~Descriptor() {
      if (fd >= 0) ::close(fd);
    }
  } secret_fd;
  std::unique_ptr<MemdProcess> memd;
  std::optional<RemoteOptions> connection;
  if (remote) {
    std::string server;
    std::string secret;
    if (e.emul.server) {
      if (!e.emul.secret_file) throw InputError("emul.secret_file", "needed with emul.server (the memd's shared secret)");
      server = *e.emul.server;
      secret = read_secret_file(*e.emul.secret_file);
    } else {
      MemdProcessOptions m;
      m.experiment = launch.experiment_file;
      m.sets = launch.sets;
      if (e.emul.secret_file) {
        m.secret_file = *e.emul.secret_file;
      } else {
        secret_fd.fd = secret_memfd();
        m.secret_fd = secret_fd.fd;
      }
      memd = std::make_unique<MemdProcess>(m);
      server = memd->address();
      secret = read_secret_file(m.secret_fd >= 0 ? secret_path(m.secret_fd) : m.secret_file);
    }
    connection = RemoteOptions{e.emul.provider, server, secret};
    connection->timeout_s = e.emul.timeout_s;
  }
  const auto store = StoreRegistry::instance().make(
      e.tier, {e, catalog, connection ? &*connection : nullptr, e.emul.scratch_dir.string()});
  if (launch.before_replay) launch.before_replay();
  metrics::RunResult r = replay(e, trace, catalog, *store, launch.progress);
  r.emul->layout = store->describe();
  r.emul->granularity = store->granularity();
  if (const RemoteSource* source = store->remote()) {
    r.emul->source = source->describe();
    r.emul->reads_issued = source->reads_issued();
    r.emul->registrations = source->registrations();
  }
  return r;
}

}  // namespace rmai::emul
