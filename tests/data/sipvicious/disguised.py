"""Runs a SIPVicious tool (svwar, svcrack) with a softphone's User-Agent instead of its own
"friendly-scanner", as a scanner hiding from User-Agent filters does.

    python3 disguised.py svwar -e100-110 -m INVITE udp://127.0.0.1:5060

The tools build every request with sipvicious.libs.svhelper.makeRequest, imported by name, so
the module's own reference is the one replaced.
"""
import importlib
import sys

import sipvicious.libs.svhelper as helper

tool = importlib.import_module("sipvicious." + sys.argv[1])
original = helper.makeRequest


def disguised(*args, **kwargs):
    kwargs["useragent"] = "Zoiper rv2.10.11.2"
    return original(*args, **kwargs)


tool.makeRequest = disguised
sys.argv = [sys.argv[1]] + sys.argv[2:]
tool.main()
