"""Seed flow (MLflow's Instructor page, as written): structured output with a validator."""

import instructor
import mlflow
from instructor import llm_validator
from openai import OpenAI
from pydantic import BaseModel, BeforeValidator
from typing_extensions import Annotated

mlflow.set_experiment("mlflow-instructor")
mlflow.openai.autolog()

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


response = client.chat.completions.create(
    model="gpt-4o",
    response_model=EmailSubject,
    messages=[{
        "role": "user",
        "content": "Come up with a subject for an email inviting users to follow the MLflow GitHub repo."
    }]
)
print(response)
mlflow.flush_trace_async_logging()
