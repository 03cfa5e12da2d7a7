"""Seed flow (MLflow's Instructor page, its second example as written): the same EmailSubject
model, through Instructor's Anthropic client, with `mlflow.anthropic.autolog()`."""

import anthropic
import instructor
import mlflow
from instructor import llm_validator
from openai import OpenAI
from pydantic import BaseModel, BeforeValidator
from typing_extensions import Annotated

mlflow.set_experiment("mlflow-instructor-anthropic")
# The page's first example defines EmailSubject with a validator on the OpenAI client.
client = instructor.from_openai(OpenAI())


class EmailSubject(BaseModel):
    recipient: str
    subject: Annotated[
        str,
        BeforeValidator(
            llm_validator(
                "ensure subject is concise and engaging",
                client=client,
                model="gpt-4o"
            )
        )
    ]


# Enable tracing for Anthropic
mlflow.anthropic.autolog()

# Create Instructor client for Anthropic
client = instructor.from_anthropic(anthropic.Anthropic())

# Use the same EmailSubject model
response = client.chat.completions.create(
    model="claude-3-sonnet-20240229",
    response_model=EmailSubject,
    messages=[{
        "role": "user",
        "content": "Come up with a subject for an email inviting users to follow the MLflow GitHub repo."
    }],
    max_tokens=1000
)
print(response)
mlflow.flush_trace_async_logging()
