// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "quiver/status.h"

#include <gtest/gtest.h>

#include "quiver/types.h"
#include "quiver/write_batch.h"

namespace quiver {
namespace {

TEST(StatusTest, OkIsDefaultAndCheap) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kOk);
  EXPECT_EQ(s.ToString(), "OK");
  EXPECT_TRUE(s.message().empty());
}

TEST(StatusTest, FactoriesCarryCodeAndMessage) {
  struct Case {
    Status s;
    Status::Code code;
    const char* name;
  };
  const Case cases[] = {
      {Status::NotFound("a"), Status::Code::kNotFound, "NotFound: a"},
      {Status::Corruption("b"), Status::Code::kCorruption, "Corruption: b"},
      {Status::NotSupported("c"), Status::Code::kNotSupported, "NotSupported: c"},
      {Status::InvalidArgument("d"), Status::Code::kInvalidArgument, "InvalidArgument: d"},
      {Status::IOError("e"), Status::Code::kIOError, "IOError: e"},
      {Status::Busy("f"), Status::Code::kBusy, "Busy: f"},
      {Status::Aborted("g"), Status::Code::kAborted, "Aborted: g"},
      {Status::ResourceExhausted("h"), Status::Code::kResourceExhausted,
       "ResourceExhausted: h"},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(c.s.ok());
    EXPECT_EQ(c.s.code(), c.code);
    EXPECT_EQ(c.s.ToString(), c.name);
  }
  EXPECT_TRUE(Status::NotFound("x").IsNotFound());
  EXPECT_TRUE(Status::Busy("x").IsBusy());
  EXPECT_TRUE(Status::InvalidArgument("x").IsInvalidArgument());
}

TEST(StatusTest, CopyAndMoveKeepState) {
  Status a = Status::IOError("disk");
  Status b = a;
  EXPECT_EQ(b.ToString(), "IOError: disk");
  EXPECT_EQ(a.ToString(), "IOError: disk");
  Status c = std::move(a);
  EXPECT_TRUE(c.IsIOError());
  b = Status::OK();
  EXPECT_TRUE(b.ok());
  b = c;
  EXPECT_EQ(b.message(), "disk");
}

TEST(TypesTest, NamesAndPersistedValues) {
  EXPECT_EQ(MetricName(Metric::kL2), "l2");
  EXPECT_EQ(MetricName(Metric::kInnerProduct), "ip");
  EXPECT_EQ(MetricName(Metric::kCosine), "cosine");
  EXPECT_EQ(DeviceName(Device::kGpu), "gpu");
  // Persisted in DB metadata: the numbers must never change.
  EXPECT_EQ(static_cast<int>(Metric::kL2), 0);
  EXPECT_EQ(static_cast<int>(Metric::kInnerProduct), 1);
  EXPECT_EQ(static_cast<int>(Metric::kCosine), 2);
}

TEST(WriteBatchTest, RecordsOpsInOrder) {
  WriteBatch b;
  const float v[3] = {1, 2, 3};
  b.Put(7, v, "pay");
  b.Delete(3);
  b.Put(7, v);
  ASSERT_EQ(b.Count(), 3u);
  EXPECT_EQ(b.ops()[0].type, WriteBatch::OpType::kPut);
  EXPECT_EQ(b.ops()[0].id, 7u);
  EXPECT_EQ(b.ops()[0].vector, std::vector<float>({1, 2, 3}));
  EXPECT_EQ(b.ops()[0].payload, "pay");
  EXPECT_EQ(b.ops()[1].type, WriteBatch::OpType::kDelete);
  EXPECT_EQ(b.ops()[1].id, 3u);
  EXPECT_TRUE(b.ops()[2].payload.empty());
  b.Clear();
  EXPECT_EQ(b.Count(), 0u);
}

}  // namespace
}  // namespace quiver
