"""PPO on GridWorldReach with the frozen encoder of a trained world model as its features extractor.

Usage: python examples/ppo_latent_reach.py --model runs/quickstart/model.safetensors [--steps 30000]
"""

import argparse

from stable_baselines3 import PPO

from dyndis_learn.rl import LatentFeaturesExtractor, SuccessRecorder, make_sb3_vec_env, steps_to_success_rate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", required=True, help="a file written by Learner.save")
parser.add_argument("--steps", type=int, default=30_000)
args = parser.parse_args()

env = make_sb3_vec_env("DynDis/GridWorldReach-v0", n_envs=8, seed=0, max_episode_steps=20)
policy_kwargs = {"features_extractor_class": LatentFeaturesExtractor,
                 "features_extractor_kwargs": {"model_path": args.model}}  # frozen; fine_tune=True to train it
agent = PPO("CnnPolicy", env, policy_kwargs=policy_kwargs, n_steps=128, batch_size=256, seed=0)
recorder = SuccessRecorder()
agent.learn(args.steps, callback=recorder)
print(f"env steps until 90% of 50 episodes succeed: {steps_to_success_rate(recorder.episodes)}")
agent.save("ppo_latent_reach.zip")
