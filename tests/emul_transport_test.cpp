// The memory server and its libfabric transport, end to end on loopback: bytes read equal the
// generated ones, several clients share a server, the secret is enforced, the server refuses reads
// outside an object or with a wrong key (the provider's own check) and keeps serving others, a
// dead or frozen server fails a read quickly instead of hanging it, the catalogs must agree, and
// `rmai memd` rejects bad input with exit code 2.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli_support.hpp"
#include "emul/control.hpp"
#include "config/errors.hpp"
#include "emul/emulation.hpp"
#include "emul/fabric.hpp"
#include "emul/memd.hpp"
#include "emul/memd_process.hpp"
#include "emul/objects.hpp"
#include "emul/remote.hpp"
#include "spec/experiment.hpp"

namespace rmai::emul {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::TempDirTest;

constexpr std::uint64_t kMiB = 1 << 20;
const std::string kSecret = "transport-test-secret-0123456789";

// 2 layers x 4 experts of 4 MiB: small enough to generate in milliseconds, large enough for
// multi-MiB reads with several pieces in flight.
CatalogSpec small_spec(std::uint64_t seed = 1) {
  CatalogSpec spec;
  spec.model = "test-moe";
  spec.moe_layers = 4;
  spec.experts = 4;
  spec.expert_bytes = 4 * kMiB;
  spec.scale = 1;
  spec.layers = {0, 2};
  spec.seed = seed;
  return spec;
}

RemoteOptions client_options(const MemoryServer& server, std::uint64_t read_size = 256 << 10, std::uint32_t depth = 16) {
  RemoteOptions o;
  o.provider = server.provider();
  o.server = server.address();
  o.secret = kSecret;
  o.read_size = read_size;
  o.queue_depth = depth;
  // Generous: in the SoftRoCE guest (TCG on 2 busy cores) a first read over verbs once took over 2 s.
  // No test here waits for the timeout; a dead server is noticed by its control connection.
  o.timeout_s = 10;
  return o;
}

// Reads [offset, offset + bytes) of `object` and checks every byte against generate().
void expect_bytes(RemoteSource& source, std::uint32_t object, std::uint64_t offset, std::uint64_t bytes) {
  std::vector<std::byte> buffer(bytes);
  source.read(object, offset, buffer);
  const auto bad = first_mismatch(source.catalog().object(object), offset, buffer);
  EXPECT_FALSE(bad.has_value()) << "object " << object << " offset " << offset << " bytes " << bytes
                                << ": first wrong byte at " << (bad ? *bad : 0);
}

// A client made of the Fabric API alone, for reads RemoteSource would never send: nothing of ours
// checks them, so whatever refuses one is the provider.
struct RawClient {
  struct Outcome {
    bool completed = false;         // the read completed without error
    bool error_completion = false;  // the provider reported an error completion (text says which)
    std::string text;
  };

  RawClient(const std::string& provider, const ControlClient& control)
      : fabric({provider, control.local_ip()}), peer(fabric.insert(control.welcome().fabric_address)) {
    if (fabric.needs_local_desc()) local = fabric.register_memory(buffer.data(), buffer.size(), FI_READ, 1);
  }

  // One fi_read of buffer.size() bytes at the server's `address` with remote key `key`. 10 s
  // without a completion is a failure (a TCG guest is slow, but not that slow).
  Outcome read(std::uint64_t address, std::uint64_t key) {
    fid_cq* cq = fabric.cq();
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    ssize_t rc;
    while ((rc = fi_read(fabric.endpoint(), buffer.data(), buffer.size(), local.desc(), peer, address, key, &context)) ==
           -FI_EAGAIN) {
      fi_cq_entry ignored;
      fi_cq_read(cq, &ignored, 1);  // drives progress; nothing else is in flight
      if (Clock::now() > deadline) return {false, false, "fi_read: queue full for 10 s"};
    }
    if (rc != 0) return {false, false, std::string("fi_read: ") + fi_strerror(static_cast<int>(-rc))};
    while (Clock::now() < deadline) {
      fi_cq_entry entry;
      const ssize_t n = fi_cq_read(cq, &entry, 1);
      if (n == 1) return {true, false, ""};
      if (n == -FI_EAVAIL) {
        fi_cq_err_entry error{};
        fi_cq_readerr(cq, &error, 0);
        char text[128] = "";
        const char* detail = fi_cq_strerror(cq, error.prov_errno, error.err_data, text, sizeof text);
        return {false, true,
                std::string(fi_strerror(error.err)) + " (provider: " + (detail ? detail : "?") +
                    ", prov_errno " + std::to_string(error.prov_errno) + ")"};
      }
      if (n != -FI_EAGAIN) return {false, false, std::string("fi_cq_read: ") + fi_strerror(static_cast<int>(-n))};
    }
    return {false, false, "no completion within 10 s"};
  }

  // Declared before the fabric, so that they outlive anything still in flight when it closes.
  std::vector<std::byte> buffer = std::vector<std::byte>(4096);
  fi_context2 context{};
  Fabric fabric;
  fi_addr_t peer;
  MemoryRegion local;  // after the fabric: deregistered before its domain closes
};

class Transport : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (const auto why = provider_unavailable_reason(GetParam()); !why.empty()) GTEST_SKIP() << why;
    catalog_ = std::make_unique<Catalog>(small_spec());
    MemoryServerOptions options;
    options.provider = GetParam();
    options.secret = kSecret;
    options.log = &log_;
    server_ = std::make_unique<MemoryServer>(*catalog_, options);
  }

  std::ostringstream log_;  // before server_: the server logs into it until it is destroyed
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<MemoryServer> server_;
};

TEST_P(Transport, ReadsEqualGeneratedBytes) {
  RemoteSource source(*catalog_, client_options(*server_, 256 << 10, 4));
  std::vector<std::byte> staging(8 * kMiB);
  source.register_buffer(staging);
  const std::uint64_t object_bytes = catalog_->object_bytes();
  ASSERT_EQ(object_bytes, 4 * kMiB);
  expect_bytes(source, 0, 0, 4096);
  expect_bytes(source, 3, 5 * 4096, 4096);
  expect_bytes(source, 7, object_bytes - 4096, 4096);  // the last page of the last object
  expect_bytes(source, 5, 12345, 1000);                // unaligned, smaller than a page
  // Whole objects and multi-MiB ranges in several pieces, up to 4 in flight.
  const std::uint64_t before = source.reads_issued();
  expect_bytes(source, 1, 0, object_bytes);
  EXPECT_EQ(source.reads_issued() - before, object_bytes / (256 << 10));
  expect_bytes(source, 6, kMiB + 4096, 2 * kMiB + 12288);
  // Into the registered buffer too (the path the region code takes).
  const auto slice = std::span(staging).subspan(kMiB, 3 * kMiB);
  source.read(2, 4096, slice);
  EXPECT_FALSE(first_mismatch(catalog_->object(2), 4096, slice).has_value());
}

TEST_P(Transport, ReadSizeAndQueueDepthVariants) {
  for (const auto& [size, depth] : std::vector<std::pair<std::uint64_t, std::uint32_t>>{
           {4096, 1}, {64 << 10, 16}, {2 * kMiB, 2}, {8 * kMiB, 16}}) {
    RemoteSource source(*catalog_, client_options(*server_, size, depth));
    expect_bytes(source, 4, 0, catalog_->object_bytes());
    expect_bytes(source, 4, 8192, 3 * kMiB);
  }
}

TEST_P(Transport, TwoClientsReadTheSameObjectsConcurrently) {
  RemoteSource a(*catalog_, client_options(*server_, 256 << 10, 8));
  RemoteSource b(*catalog_, client_options(*server_, 1 << 20, 2));
  EXPECT_EQ(server_->clients_connected(), 2u);
  const auto stream = [&](RemoteSource& source) {
    for (int pass = 0; pass < 2; ++pass)
      for (std::uint32_t id = 0; id < catalog_->objects().size(); ++id) expect_bytes(source, id, 0, catalog_->object_bytes());
  };
  std::thread other([&] { stream(b); });
  stream(a);
  other.join();
  EXPECT_GE(a.reads_issued(), 2 * catalog_->objects().size() * 16);
}

TEST_P(Transport, WrongSecretIsRefusedAndTheServerServesOthers) {
  auto options = client_options(*server_);
  options.secret = "not-the-secret-at-all-but-long";
  try {
    RemoteSource source(*catalog_, options);
    FAIL() << "a wrong secret was accepted";
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("refused"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server_->clients_refused(), 1u);
  EXPECT_EQ(server_->clients_accepted(), 0u);
  EXPECT_NE(log_.str().find("refused client"), std::string::npos) << log_.str();
  EXPECT_NE(log_.str().find("wrong secret"), std::string::npos) << log_.str();
  RemoteSource right(*catalog_, client_options(*server_));
  expect_bytes(right, 2, 0, 64 << 10);
}

TEST_P(Transport, ClientSideBoundsCheck) {
  RemoteSource source(*catalog_, client_options(*server_));
  std::vector<std::byte> buffer(8192);
  const std::uint64_t issued = source.reads_issued();
  EXPECT_THROW(source.read(0, catalog_->object_bytes() - 4096, buffer), TransportError);
  EXPECT_THROW(source.read(0, ~std::uint64_t(0) - 10, buffer), TransportError);  // offset + size overflows
  EXPECT_THROW(source.read(static_cast<std::uint32_t>(catalog_->objects().size()), 0, buffer), TransportError);
  EXPECT_EQ(source.reads_issued(), issued);  // nothing was sent
  expect_bytes(source, 0, 0, 8192);
}

TEST_P(Transport, ServerRefusesReadsOutsideAnObject) {
  if (GetParam() == "shm")
    GTEST_SKIP() << "the shm provider (libfabric 1.17) checks neither keys nor bounds of remote reads; "
                    "only RemoteSource::read's client-side check applies there";
  RemoteSource bad(*catalog_, client_options(*server_));
  RemoteSource good(*catalog_, client_options(*server_));
  std::vector<std::byte> buffer(4096);
  const std::uint64_t end = catalog_->object_bytes();
  // Straddling the end of object 0, and wholly past it: the bytes there are object 1's (one mapping
  // holds them all), so only the memory region's bounds can refuse.
  for (const std::uint64_t offset : {end - 2048, end}) {
    try {
      bad.read_unchecked(0, offset, buffer);
      FAIL() << "memd served a read at offset " << offset << " of a " << end << "-byte object";
    } catch (const TransportError& e) {
      EXPECT_NE(std::string(e.what()).find("refused or failed"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("gone"), std::string::npos) << e.what();
      // The provider's own words, for the log of a run on real RDMA (scripts/softroce/check.sh).
      std::cout << "[ provider ] " << GetParam() << " refused a read at offset " << offset << ": " << e.what() << std::endl;
    }
    expect_bytes(good, 1, 0, 64 << 10);  // the server keeps serving the other client
  }
  // The refused client re-creates its endpoint and reads again.
  expect_bytes(bad, 0, end - 4096, 4096);
  EXPECT_GE(bad.reconnects(), 1u);
  // A new client is fine too.
  RemoteSource late(*catalog_, client_options(*server_));
  expect_bytes(late, 7, 0, 4096);
}

TEST_P(Transport, ProviderRefusesAWrongKey) {
  if (GetParam() == "shm")
    GTEST_SKIP() << "the shm provider (libfabric 1.17) checks neither keys nor bounds of remote reads; "
                    "only RemoteSource::read's client-side check applies there";
  ControlClient control(server_->address(), kSecret, 2);
  const Welcome& welcome = control.welcome();
  const ServedObject& object = welcome.objects.at(1);
  // A key no served region has; flipping bit 23 keeps it within the 32 bits of a verbs rkey.
  const std::uint64_t wrong = object.key ^ (std::uint64_t(1) << 23);
  for (const auto& o : welcome.objects) ASSERT_NE(o.key, wrong) << "object " << o.id;
  RemoteSource other(*catalog_, client_options(*server_));
  RawClient raw(GetParam(), control);
  // The right key first: this client works, so the read below fails for its key alone.
  const auto right = raw.read(object.address, object.key);
  ASSERT_TRUE(right.completed) << right.text;
  EXPECT_FALSE(first_mismatch(catalog_->object(1), 0, raw.buffer).has_value());
  const auto refused = raw.read(object.address, wrong);
  EXPECT_FALSE(refused.completed) << "the provider served a read with key " << wrong << " instead of " << object.key;
  EXPECT_TRUE(refused.error_completion) << refused.text;
  std::cout << "[ provider ] " << GetParam() << " refused a wrong key: " << refused.text << std::endl;
  // The server keeps serving: the client connected before, and one connected after.
  expect_bytes(other, 1, 0, 64 << 10);
  RemoteSource late(*catalog_, client_options(*server_));
  expect_bytes(late, 7, 0, 4096);
}

TEST_P(Transport, ServerStopClosesClients) {
  RemoteSource source(*catalog_, client_options(*server_));
  expect_bytes(source, 0, 0, 4096);
  server_->stop();
  // A client looks at its control connection at most every millisecond (shm reads take a few us).
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::vector<std::byte> buffer(4096);
  const auto start = Clock::now();
  try {
    source.read(0, 0, buffer);
    FAIL() << "read after stop() succeeded";
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("is gone"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 1.0);
  EXPECT_THROW(source.read(0, 0, buffer), TransportError);  // and stays gone
}

// verbs needs an RDMA device: SetUp skips it elsewhere; scripts/softroce/run.sh provides one (rxe).
INSTANTIATE_TEST_SUITE_P(Providers, Transport, ::testing::Values("tcp", "shm", "verbs"),
                         [](const auto& info) { return info.param; });

TEST(TransportCatalog, MismatchIsInputErrorNamingTheField) {
  const Catalog served(small_spec(1));
  MemoryServerOptions options;
  options.secret = kSecret;
  std::ostringstream log;
  options.log = &log;
  MemoryServer server(served, options);
  const auto expect_field = [&](const CatalogSpec& spec, const std::string& field) {
    const Catalog mine(spec);
    try {
      RemoteSource source(mine, client_options(server));
      FAIL() << "a catalog differing in " << field << " was accepted";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(field + ":", 0), 0u) << e.what();
    }
  };
  expect_field(small_spec(2), "seed");
  auto layers = small_spec();
  layers.layers = {0, 1};
  expect_field(layers, "emul.layers");
  auto scale = small_spec();
  scale.scale = 0.5;
  expect_field(scale, "emul.scale");
  auto model = small_spec();
  model.model = "other-moe";
  expect_field(model, "model");
  auto provider = client_options(server);
  provider.provider = "shm";
  EXPECT_THROW(RemoteSource(served, provider), InputError);
}

TEST(TransportControl, SecretsCompareWhole) {
  EXPECT_TRUE(secrets_equal("abcdefghijklmnop", "abcdefghijklmnop"));
  EXPECT_FALSE(secrets_equal("abcdefghijklmnop", "abcdefghijklmnoq"));
  EXPECT_FALSE(secrets_equal("abcdefghijklmnop", "abcdefghijklmno"));
  EXPECT_FALSE(secrets_equal("", "a"));
  EXPECT_EQ(parse_host_port("127.0.0.1:0", "x"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 0}));
  EXPECT_EQ(parse_host_port("[::1]:7000", "x"), (std::pair<std::string, std::uint16_t>{"::1", 7000}));
  EXPECT_THROW(parse_host_port("localhost", "x"), InputError);
  EXPECT_THROW(parse_host_port("localhost:70000", "x"), InputError);
}

TEST(TransportControl, UnreachableServerIsTransportError) {
  const Catalog catalog(small_spec());
  RemoteOptions o;
  o.server = "127.0.0.1:1";  // nothing listens on port 1 here
  o.secret = kSecret;
  EXPECT_THROW(RemoteSource(catalog, o), TransportError);
}

// memd as a process, started the way `rmai run --mode emul` starts it.
class MemdProcessTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (const auto why = provider_unavailable_reason("tcp"); !why.empty()) GTEST_SKIP() << why;
    // Mixtral's experts at 1/64 scale (5.5 MB), two of its layers: 16 objects.
    experiment_ = write("exp.yaml",
                        "model: mixtral-8x7b\ncache: {gpu_experts: 8}\ntrace: {tokens: 8}\n"
                        "emul: {scale: 0.015625, layers: '0-1'}\n");
    secret_file_ = write_secret_file(dir_);
  }

  MemdProcessOptions process_options() const {
    MemdProcessOptions o;
    o.binary = testing::kRmai;
    o.experiment = experiment_;
    o.sets = {"seed=7"};
    o.secret_file = secret_file_;
    return o;
  }

  RemoteOptions remote_options(const MemdProcess& memd) const {
    RemoteOptions o;
    o.server = memd.address();
    o.secret = read_secret_file(secret_file_);
    o.timeout_s = 2;
    return o;
  }

  fs::path experiment_, secret_file_;
};

TEST_F(MemdProcessTest, SecretFileIsPrivateAndRandom) {
  struct stat st{};
  ASSERT_EQ(::stat(secret_file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string secret = read_secret_file(secret_file_);
  EXPECT_EQ(secret.size(), 64u);
  EXPECT_EQ(secret.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(read_secret_file(write_secret_file(dir_)), secret);
}

TEST_F(MemdProcessTest, ServesTheExperimentsCatalogAndStopsCleanly) {
  MemdProcess memd(process_options());
  EXPECT_GT(memd.pid(), 0);
  EXPECT_EQ(memd.address().rfind("127.0.0.1:", 0), 0u) << memd.address();
  EXPECT_NE(memd.log().find("serving 16 objects of 5.5 MB"), std::string::npos) << memd.log();
  const auto e = spec::load_experiment(experiment_, {"seed=7"});
  const Catalog catalog = catalog_of(e);
  {
    RemoteSource source(catalog, remote_options(memd));
    for (const std::uint32_t id : {0u, 9u, 15u}) expect_bytes(source, id, 0, catalog.object_bytes());
  }
  // Another seed is another catalog: refused by the client, naming the key.
  const Catalog other = catalog_of(spec::load_experiment(experiment_, {"seed=8"}));
  try {
    RemoteSource source(other, remote_options(memd));
    FAIL() << "catalog mismatch not detected";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("seed"), std::string::npos) << e.what();
  }
  const int status = memd.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << memd.log();
  EXPECT_EQ(memd.pid(), 0);
}

TEST_F(MemdProcessTest, KilledServerFailsAReadWithinSeconds) {
  MemdProcess memd(process_options());
  const Catalog catalog = catalog_of(spec::load_experiment(experiment_, {"seed=7"}));
  RemoteSource source(catalog, remote_options(memd));
  std::atomic<bool> reading{false};
  std::atomic<std::uint64_t> reads{0};
  std::string error;
  Clock::time_point failed_at{};
  std::thread stream([&] {
    std::vector<std::byte> buffer(catalog.object_bytes());
    try {
      for (std::uint32_t i = 0;; i = (i + 1) % catalog.objects().size()) {
        source.read(i, 0, buffer);
        ++reads;
        reading = true;
      }
    } catch (const TransportError& e) {
      failed_at = Clock::now();
      error = e.what();
    }
  });
  while (!reading) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(memd.pid(), SIGKILL), 0);
  stream.join();
  const double seconds = std::chrono::duration<double>(failed_at - killed_at).count();
  EXPECT_LT(seconds, 5.0) << error;
  EXPECT_GT(reads.load(), 0u);
  EXPECT_NE(error.find("is gone"), std::string::npos) << error;
  EXPECT_NE(error.find(memd.address()), std::string::npos) << error;
  std::vector<std::byte> page(4096);
  EXPECT_THROW(source.read(0, 0, page), TransportError);
  const int status = memd.stop();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST_F(MemdProcessTest, FrozenServerTimesOutInsteadOfHanging) {
  MemdProcess memd(process_options());
  const Catalog catalog = catalog_of(spec::load_experiment(experiment_, {"seed=7"}));
  auto options = remote_options(memd);
  options.timeout_s = 0.5;
  RemoteSource source(catalog, options);
  expect_bytes(source, 3, 0, 4096);
  ASSERT_EQ(::kill(memd.pid(), SIGSTOP), 0);  // alive (control socket open) but serving nothing
  std::vector<std::byte> buffer(catalog.object_bytes());
  const auto start = Clock::now();
  try {
    source.read(3, 0, buffer);
    ADD_FAILURE() << "a read from a stopped server completed";
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out after 0.5 s"), std::string::npos) << e.what();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GE(seconds, 0.5);
  EXPECT_LT(seconds, 2.0);
  ASSERT_EQ(::kill(memd.pid(), SIGCONT), 0);
  // The source recovers once the server runs again.
  expect_bytes(source, 3, 0, catalog.object_bytes());
}

TEST_F(MemdProcessTest, BadInputIsInputError) {
  auto options = process_options();
  options.secret_file = write("short.secret", "tooshort\n");
  try {
    MemdProcess memd(options);
    FAIL() << "memd started with a short secret";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("short.secret"), std::string::npos) << e.what();
  }
}

// `rmai memd` bad input: exit code 2 and a message naming what is wrong.
class MemdCli : public TempDirTest {};

TEST_F(MemdCli, BadInputExitsWithTwo) {
  const auto experiment = write("exp.yaml", "model: mixtral-8x7b\ncache: {gpu_experts: 8}\nemul: {scale: 0.001, layers: '0'}\n");
  const auto good_secret = write_secret_file(dir_).string();
  const auto empty = write("empty.secret", "\n").string();
  const auto short_secret = write("short.secret", "abc\n").string();
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases{
      {{"memd", experiment.string()}, "secret"},
      {{"memd", experiment.string(), "--secret-file", (dir_ / "missing.secret").string()}, "missing.secret"},
      {{"memd", experiment.string(), "--secret-file", empty}, "empty.secret"},
      {{"memd", experiment.string(), "--secret-file", short_secret}, "short.secret"},
      {{"memd", experiment.string(), "--secret-file", good_secret, "--bogus"}, "--bogus: unknown option"},
      {{"memd", experiment.string(), "--secret-file", good_secret, "--listen", "nowhere"}, "--listen"},
      {{"memd", experiment.string(), "--secret-file", good_secret, "--ready-fd", "x"}, "--ready-fd"},
      {{"memd", experiment.string(), "--secret-file", good_secret, "--set", "emul.layers=40"}, "emul.layers"},
      {{"memd", experiment.string(), "--secret-file", good_secret, "--set", "emul.provider=udp"}, "emul.provider"},
      {{"memd"}, "no experiment file"},
  };
  for (const auto& c : cases) {
    const auto r = testing::run(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << joined << "\n" << r.err;
  }
  const auto help = testing::run({"memd", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--secret-file"), std::string::npos);
}

}  // namespace
}  // namespace rmai::emul
