"""Seed flow: register a prompt, load it inside a traced function, call the model with it."""

import mlflow
from openai import OpenAI

mlflow.set_experiment("x")
mlflow.openai.autolog()
mlflow.genai.register_prompt(name="0001.explain_code", template="Explain this {{language}} code:\n{{code}}",
                             commit_message="first", tags={"team": "docs"})
client = OpenAI()


@mlflow.trace
def explain(code: str) -> str:
    prompt = mlflow.genai.load_prompt("prompts:/0001.explain_code/1")
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt.format(language="python", code=code)}])
    return response.choices[0].message.content


print(explain("print(1)"))
mlflow.genai.register_prompt(name="0001.explain_code", template="Explain this {{language}} code briefly:\n{{code}}",
                             commit_message="second")
mlflow.flush_trace_async_logging()
