"""What the tests share: tiny frames, paths, graph runs in temp homes, and fakes of remote
services that speak their real protocols on 127.0.0.1."""
