"""The tutorial, unchanged, against `locallama serve` (issue 9): LangChain's
`langchain_community.llms.Ollama(model=...).invoke(...)` and `.stream(...)` on SmolLM2 created
as `smollm2:135m` (temperature 0.2, a num_predict cap, as the README's demo does). The client
is the real PyPI package (langchain-community 0.4.x, installed by .ci/run); the server runs
on a free loopback port with a temporary store and is stopped by PID."""
import warnings

import pytest

from test_api_native import Server

langchain_community = pytest.importorskip("langchain_community")


@pytest.fixture(scope="module")
def tutorial_server(tmp_path_factory, smollm2_path):
    srv = Server(tmp_path_factory.mktemp("langchain"))
    try:
        st, body = srv.json("POST", "/api/create", {
            "model": "smollm2:135m", "from": smollm2_path, "stream": False,
            "parameters": {"temperature": 0.2, "num_predict": 120}})
        assert st == 200, body
        yield srv
    finally:
        srv.stop()


def make_llm(srv, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.llms import Ollama
        return Ollama(model="smollm2:135m", base_url=f"http://127.0.0.1:{srv.port}", **kw)


def test_tutorial_invoke(tutorial_server):
    llm = make_llm(tutorial_server)
    for prompt in ("Tell me a joke",
                   "Summarize in one sentence: The cat sat on the mat all day long.",
                   "Translate the following into French: I love programming."):
        answer = llm.invoke(prompt)
        assert isinstance(answer, str) and answer.strip(), (prompt, answer)


def test_stream_equals_invoke_at_temperature_0(tutorial_server):
    """Greedy: the streamed chunks join into exactly the one-shot answer."""
    llm = make_llm(tutorial_server, temperature=0, num_predict=40)
    prompt = "Why is the sky blue?"
    chunks = list(llm.stream(prompt))
    assert len(chunks) >= 2, chunks
    assert "".join(chunks) == llm.invoke(prompt)
