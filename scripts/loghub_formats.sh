# Sourced by the parser-accuracy scripts: the release binary (built here) and the format string
# loghub publishes for each bundled 2k sample (see ../shared/data/README.md).
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/loglake

declare -A FORMATS=(
  [HDFS]='<Date> <Time> <Pid> <Level> <Component>: <Content>'
  [Apache]='\[<Time>\] \[<Level>\] <Content>'
  [OpenSSH]='<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>'
  [Linux]='<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>'
  [Spark]='<Date> <Time> <Level> <Component>: <Content>'
  [Zookeeper]='<Date> <Time> - <Level> \[<Node>:<Component>@<Id>\] - <Content>'
  [HealthApp]='<Time>\|<Component>\|<Pid>\|<Content>'
  [Mac]='<Month> <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>'
)
